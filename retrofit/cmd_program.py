"""`retrofit program`, `retrofit subsidy`, `retrofit savings`: the retrofit programme, subsidies and measured savings.

The records database is ``settings.records_url`` (SQLite in the data dir by default); it is migrated to the
newest schema (Alembic) whenever a command opens it. Measured savings read daily energy and outdoor
temperature from the configured telemetry store through the one savings definition, insight/savings.py.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from buildings import DEFAULT_SITE, SAMPLE_PROGRAMME, shown_path
from retrofit.settings import settings_or_exit

if TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.orm import sessionmaker

    from buildings.site import Site
    from buildings.subsidy.engine import Eligibility
    from insight.savings import MeasuredSavings

DEFAULT_PROGRAMME = shown_path(SAMPLE_PROGRAMME)

program_app = typer.Typer(help="The retrofit programme: import/export, status, milestones, priority ranking.  "
                               "Example: retrofit program status --building jiefangbei-tower", no_args_is_help=True)
subsidy_app = typer.Typer(help="Subsidy policies: eligibility, amounts, payments.  "
                               "Example: retrofit subsidy check --building jiefangbei-tower "
                               "--policy CQ-YZ-OLDBLDG-SMART-DEMO", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach `program`, `subsidy` and `savings` to the retrofit command."""
    app.add_typer(program_app, name="program")
    app.add_typer(subsidy_app, name="subsidy")
    app.command("savings")(savings_cmd)


def open_records(records_url: str | None = None) -> sessionmaker:
    """A session factory on the records database, migrated to the newest revision."""
    from buildings.records import make_engine, session_factory
    from buildings.records.migrate import upgrade

    url = records_url or settings_or_exit().effective_records_url
    engine = make_engine(url)
    upgrade(url, engine=engine)
    return session_factory(engine)


def _date(v: str, what: str) -> dt.date:
    from retrofit.cli import fail

    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        raise fail(f"{what}: {v!r} is not a date (YYYY-MM-DD)") from None


def _period(v: str, what: str) -> tuple[dt.date, dt.date]:
    from retrofit.cli import fail

    a, sep, b = v.partition(":")
    if not sep:
        raise fail(f"{what}: give FROM:TO, e.g. 2024-07-01:2025-06-30 (both days included)")
    first, last = _date(a, what), _date(b, what)
    if last < first:
        raise fail(f"{what}: {last} is before {first}")
    return first, last


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, default=str, indent=2))


# --- program ----------------------------------------------------------------------------------------


@program_app.command("import")
def program_import(
    site: str = typer.Option(DEFAULT_SITE, help="site file or folder (buildings and owners)"),
    programme: str | None = typer.Option(DEFAULT_PROGRAMME, "--programme", help="programme YAML ('' for none)"),
    policies: str | None = typer.Option(None, help="policy folder (default: buildings/policies)"),
    shares_csv: Path | None = typer.Option(None, help="ownership shares spreadsheet (CSV) to apply after"),
    measures_csv: Path | None = typer.Option(None, help="measures spreadsheet (CSV) to append after"),
    actor: str = typer.Option("cli", help="who is importing (recorded in the audit log)"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Load buildings and owners from the site files, the policies, and the programme YAML into the records
    database, all in one transaction (any error: nothing is written).

    Example: retrofit program import --site buildings/sites/yuzhong --programme buildings/program/yuzhong.yaml
    """
    from buildings.records.program import ProgramError, import_all, import_measures_csv, import_shares_csv
    from buildings.subsidy.policy import POLICY_DIR, PolicyError, load_policies
    from retrofit.cli import console, err, fail, load_site_or_exit

    s_site = load_site_or_exit(site)
    folder = policies or str(POLICY_DIR)
    try:
        pols = load_policies(folder)
    except PolicyError as exc:
        for p in exc.problems:
            err.print(str(p), style="red", markup=False, highlight=False, soft_wrap=True)
        raise fail(f"{len(exc.problems)} policy problem(s); nothing was imported", code=2) from None
    sf = open_records(records_url)
    try:
        with sf.begin() as s:
            import_all(s, s_site, programme or None, pols, actor, folder)
            n_sh = import_shares_csv(s, shares_csv, actor) if shares_csv else 0
            n_me = import_measures_csv(s, measures_csv, actor) if measures_csv else 0
    except ProgramError as exc:
        for p in exc.problems:
            err.print(str(p), style="red", markup=False, highlight=False, soft_wrap=True)
        raise fail(f"{exc if not exc.problems else 'the programme file has errors'}; nothing was imported",
                   code=2) from None
    extra = f", {n_sh} share rows, {n_me} measures from CSV" if shares_csv or measures_csv else ""
    console.print(f"[green]imported[/] {len(s_site.files)} buildings, {len(pols)} policies"
                  f"{', programme ' + programme if programme else ''}{extra}")


@program_app.command("export")
def program_export(
    out: Path = typer.Option(..., "--out", help="a .yaml file, or a folder for CSV"),
    fmt: str = typer.Option("yaml", "--format", help="yaml (re-importable programme file) or csv (one per table)"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Export the programme as a re-importable YAML file, or every table as CSV for spreadsheets.

    Example: retrofit program export --format csv --out programme-csv/
    """
    from buildings.records.program import export_csv, export_program, write_yaml
    from retrofit.cli import console, fail

    sf = open_records(records_url)
    with sf() as s:
        if fmt == "yaml":
            write_yaml(export_program(s), out)
            console.print(f"[green]wrote[/] {out}")
        elif fmt == "csv":
            paths = export_csv(s, out)
            console.print(f"[green]wrote[/] {len(paths)} CSV files to {out}")
        else:
            raise fail(f"--format {fmt!r}: use yaml or csv")


@program_app.command("status")
def program_status(
    building: str | None = typer.Option(None, "--building", help="one building's projects"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Projects with their stage, progress (computed from milestones), budget, vote and subsidy applications.

    Example: retrofit program status --building huaxin-building
    """
    from rich.table import Table

    from buildings.records import queries as q
    from retrofit.cli import console, fail

    sf = open_records(records_url)
    with sf() as s:
        rows = q.project_status(s, building_id=building)
    if building and not rows:
        raise fail(f"no retrofit project for building {building!r}; check the id or import the programme")
    if as_json:
        _print_json(rows)
        return
    t = Table(title="retrofit projects")
    for c in ("project", "building", "stage", "progress", "next milestone", "missing docs", "budget", "vote",
              "applications"):
        t.add_column(c)
    for r in rows:
        vote = "not needed" if not r["vote_required"] else (r["vote"]["reason"].split(":")[0] if r["vote"] else
                                                              "required, not held")
        apps = "; ".join(f"{a['policy_id']} {a['status']} paid {a['paid']:,.0f}" for a in r["applications"])
        t.add_row(r["project_id"], r["building_id"], f"{r['stage']} {r['stage_label'][0]}", f"{r['progress']:.0%}",
                  r["next_milestone"] or "-", ", ".join(r["missing_docs"]) or "-", f"{r['budget']:,.0f}", vote,
                  apps or "-")
    console.print(t)


@program_app.command("milestone")
def program_milestone(
    project: str = typer.Option(..., help="project id"),
    name: str = typer.Option(..., help="milestone name"),
    date: str = typer.Option(..., help="actual date, YYYY-MM-DD"),
    by: str = typer.Option(..., "--by", help="who signs it off (a role or an organisation)"),
    actor: str = typer.Option("cli", help="who records it (audit log)"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Mark a milestone done; refused when an earlier stage is open, documents are missing or the date is
    before an earlier stage's.

    Example: retrofit program milestone --project hx-2026-public-areas --name "Owners' vote and expert review"
    --date 2026-12-15 --by "district housing bureau"
    """
    from buildings.records.program import ProgramError, complete_milestone
    from buildings.retrofit import MilestoneError
    from retrofit.cli import console, fail

    sf = open_records(records_url)
    try:
        with sf.begin() as s:
            complete_milestone(s, project, name, _date(date, "--date"), by, actor)
    except (MilestoneError, ProgramError) as exc:
        raise fail(f"{exc}; nothing was recorded", code=2) from None
    console.print(f"[green]done[/] {project}: {name} on {date}")


@program_app.command("rank")
def program_rank(
    as_of: str | None = typer.Option(None, help="evaluate on this date (default today)"),
    measured_eui: str | None = typer.Option(None, help="FROM:TO: use EUI metered in the telemetry store over "
                                                       "this period instead of the programme's billed EUI"),
    site: str = typer.Option(DEFAULT_SITE, help="site file or folder (with --measured-eui)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """The district's buildings by retrofit priority (EUI vs GB/T 51161, ownership, age, savings, subsidy).

    Example: retrofit program rank --measured-eui 2025-01-01:2025-12-31
    """
    from rich.table import Table

    from buildings.records import queries as q
    from retrofit.cli import console

    override = metered_eui(site, _period(measured_eui, "--measured-eui")) if measured_eui else None
    sf = open_records(records_url)
    with sf() as s:
        rows = q.ranking(s, as_of=_date(as_of, "--as-of") if as_of else None, eui_override=override)
    if as_json:
        _print_json(rows)
        return
    t = Table(title="retrofit priority")
    for c in ("#", "building", "score", "EUI", "ownership", "best subsidy verdict", "notes"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["rank"]), r["building_id"], f"{r['score']:.2f}",
                  "-" if r["eui_kwh_m2a"] is None else f"{r['eui_kwh_m2a']:.0f}", r["structure_class"],
                  r["best_verdict"] or "-", "; ".join(r["notes"]))
    console.print(t)


def metered_eui(site_path: str, period: tuple[dt.date, dt.date]) -> dict[str, tuple[float, str]]:
    """Building id -> (kWh/m2/year, evidence) metered in the telemetry store (telemetry/queries.py)."""
    from zoneinfo import ZoneInfo

    from retrofit.cli import fail, load_site_or_exit
    from telemetry import StoreError, open_store
    from telemetry.queries import energy_use_intensity

    s_site = load_site_or_exit(site_path)
    try:
        store = open_store(settings_or_exit(), readonly=True)
    except StoreError as exc:
        raise fail(str(exc)) from None
    out: dict[str, tuple[float, str]] = {}
    try:
        for b in s_site.buildings:
            tz = ZoneInfo(b.timezone)
            start = dt.datetime.combine(period[0], dt.time(), tz).timestamp()
            end = dt.datetime.combine(period[1] + dt.timedelta(days=1), dt.time(), tz).timestamp()
            i = energy_use_intensity(store, s_site, b.id, start, end)
            if i.covered_days:
                out[b.id] = (i.kwh_per_m2_year, f"metered {period[0]}..{period[1]}, {i.covered_days} days with "
                                                f"data, annualised")
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    return out


# --- subsidy ----------------------------------------------------------------------------------------


@subsidy_app.command("check")
def subsidy_check(
    building: str = typer.Option(..., "--building", help="building id"),
    policy: str = typer.Option(..., "--policy", help="policy id (see `retrofit subsidy policies`)"),
    project: str | None = typer.Option(None, help="project id (default: the building's latest)"),
    as_of: str | None = typer.Option(None, help="evaluate on this date (default today)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Eligible / not yet / not eligible, every condition with its evidence, the estimated amount after caps,
    the staged payments and what is missing.

    Example: retrofit subsidy check --building jiefangbei-tower --policy CQ-YZ-OLDBLDG-SMART-DEMO
    """
    from buildings.records import queries as q
    from retrofit.cli import fail

    sf = open_records(records_url)
    with sf() as s:
        try:
            e = q.eligibility(s, building, policy, project_id=project, as_of=_date(as_of, "--as-of") if as_of else None)
        except KeyError as exc:
            raise fail(str(exc.args[0])) from None
    if as_json:
        _print_json(e.as_dict())
    else:
        _print_eligibility(e)


def _print_eligibility(e: Eligibility) -> None:
    """The verdict, the condition table, the amount with its caps, the tranches and what is missing."""
    from rich.table import Table

    from buildings.subsidy.status import Verdict
    from retrofit.cli import console

    colour = {Verdict.ELIGIBLE: "green", Verdict.NOT_YET: "yellow", Verdict.NOT_ELIGIBLE: "red"}[e.verdict]
    console.print(f"[bold]{e.policy_id}[/] for [bold]{e.building_id}[/] ({e.project_id or 'no project'}) on {e.as_of}: "
                  f"[{colour}]{e.verdict}[/]")
    t = Table()
    for c in ("condition", "status", "has", "evidence", "provenance"):
        t.add_column(c, overflow="fold")
    for c in e.conditions:
        cond = f"{'NOT ' if c.negated else ''}{c.field} {c.op} {'' if c.expected is None else c.expected}"
        t.add_row(cond, c.status, str(c.actual), c.evidence, c.provenance or "")
    console.print(t)
    a = e.amount
    basis = "final" if a.final else "provisional"
    amount = "unknown" if a.capped is None else f"{a.capped:,.2f} {a.currency} ({basis})"
    console.print(f"amount: {amount}")
    for line in a.lines:
        console.print(f"  {line}")
    if a.caps_applied:
        console.print(f"  binding cap: {', '.join(a.caps_applied)}")
    for tr in e.tranches:
        amt = "?" if tr.amount is None else f"{tr.amount:,.2f}"
        console.print(f"tranche {tr.seq} ({tr.pct:g} %, {tr.basis}, at {tr.trigger_stage}): {amt} {tr.status}, "
                      f"paid {tr.paid:,.2f}{' - missing: ' + '; '.join(tr.missing) if tr.missing else ''}")
    if e.missing:
        console.print("[bold]missing:[/]")
        for m in e.missing:
            console.print(f"  - {m}", markup=False)
    if e.todo:
        console.print("[bold]why not:[/]" if e.verdict == "not_eligible" else "[bold]next steps:[/]")
        for td in e.todo:
            alt = f" (alternative {td.group}.{td.branch + 1})" if td.group is not None else ""
            console.print(f"  - {td.actor + ': ' if td.actor else ''}{td}{alt}", markup=False)


@subsidy_app.command("pay")
def subsidy_pay(
    application: str = typer.Option(..., help="application id"),
    tranche: int = typer.Option(..., help="tranche number"),
    amount: float = typer.Option(..., help="amount paid"),
    date: str = typer.Option(..., help="payment date, YYYY-MM-DD"),
    actor: str = typer.Option("cli", help="who records it (audit log)"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Record a tranche payment; refused beyond the tranche's share or the policy's caps, or before the
    tranche's stage and documents are complete.

    Example: retrofit subsidy pay --application app-jfb-cqyz --tranche 2 --amount 828000 --date 2026-12-20
    """
    from buildings.records.program import ProgramError, record_payment
    from retrofit.cli import console, fail

    sf = open_records(records_url)
    try:
        with sf.begin() as s:
            record_payment(s, application, tranche, amount, _date(date, "--date"), actor)
    except ProgramError as exc:
        raise fail(str(exc), code=2) from None
    console.print(f"[green]recorded[/] {amount:,.2f} on {application} tranche {tranche}")


@subsidy_app.command("policies")
def subsidy_policies(
    folder: str | None = typer.Option(None, help="policy folder (default: buildings/policies)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Validate and list the subsidy policies with the provenance of their numbers.

    Example: retrofit subsidy policies
    """
    from buildings.subsidy.policy import POLICY_DIR, PolicyError, load_policies
    from retrofit.cli import console, err, fail

    try:
        pols = load_policies(folder or POLICY_DIR)
    except PolicyError as exc:
        for p in exc.problems:
            err.print(str(p), style="red", markup=False, highlight=False, soft_wrap=True)
        raise fail(f"{len(exc.problems)} policy problem(s)", code=2) from None
    if as_json:
        _print_json({k: v.model_dump(mode="json", by_alias=True) for k, v in pols.items()})
        return
    for p in pols.values():
        console.print(f"[bold]{p.id}[/] {p.name} ({p.jurisdiction.level} {p.jurisdiction.code}, {p.valid_from} to "
                      f"{p.valid_to or 'open'})", markup=True, highlight=False)
        for k, v in p.provenance.items():
            console.print(f"  {k}: {v.status.value} {v.source or v.note or ''}", markup=False, highlight=False)


# --- savings ----------------------------------------------------------------------------------------


def savings_cmd(
    building: str = typer.Option(..., "--building", help="building id"),
    baseline: str | None = typer.Option(None, "--baseline", help="pre-retrofit period FROM:TO (12 months or "
                                                                 "more; default: the year before the retrofit)"),
    reporting: str | None = typer.Option(None, "--reporting", help="post-retrofit period FROM:TO (default: the "
                                                                   "year from the retrofit date, up to yesterday)"),
    site: str = typer.Option(DEFAULT_SITE, help="site file or folder"),
    record: bool = typer.Option(False, "--record", help="store the result in the records database"),
    project: str | None = typer.Option(None, help="project the result belongs to (with --record)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    records_url: str | None = typer.Option(None, help="records database URL (default: settings)"),
) -> None:
    """Measured savings, IPMVP option C: a change-point baseline (2P/3PH/3PC/4P/5P with a working-day term)
    on daily energy vs outdoor temperature from the telemetry store, checked against ASHRAE Guideline 14,
    applied to the reporting period: avoided energy, savings %, fractional savings uncertainty.

    Example: retrofit savings --building daping-makerworks --baseline 2024-10-01:2025-09-30
    --reporting 2025-10-16:2026-04-15
    """
    from retrofit.cli import fail, load_site_or_exit

    s_site = load_site_or_exit(site)
    try:
        s_site.building(building)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    if (baseline is None) != (reporting is None):
        raise fail("give both --baseline and --reporting, or neither (the years around the retrofit date)")
    measured = _measure(s_site, building, _period(baseline, "--baseline") if baseline else None,
                        _period(reporting, "--reporting") if reporting else None)
    if record:
        from buildings.records.program import record_savings

        sf = open_records(records_url)
        with sf.begin() as s:
            record_savings(s, building, measured.result, "cli", project_id=project,
                           source=f"telemetry: {measured.evidence.as_dict()['energy']}")
    if as_json:
        _print_json(measured.as_dict())
    else:
        _print_savings(measured, record)


def _measure(site: Site, building: str, baseline: tuple[dt.date, dt.date] | None,
             reporting: tuple[dt.date, dt.date] | None) -> MeasuredSavings:
    """The one savings function on the configured store; a refused baseline exits 2, a missing point 1."""
    from buildings.savings import BaselineError
    from insight.savings import measure
    from retrofit.cli import fail
    from telemetry import StoreError, open_store

    try:
        store = open_store(settings_or_exit(), readonly=True)
    except StoreError as exc:
        raise fail(str(exc)) from None
    try:
        return measure(store, site, building, baseline, reporting)
    except BaselineError as exc:
        raise fail(f"baseline refused: {exc.reason}", code=2) from None
    except (LookupError, StoreError) as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()


def _print_savings(measured: MeasuredSavings, recorded: bool) -> None:
    from retrofit.cli import console

    result = measured.result
    b = result.baseline
    console.print(f"[bold]{measured.building_id}[/] baseline {b.period[0]}..{b.period[1]} ({b.days} d, "
                  f"{b.coverage:.0%} coverage), model {b.model.kind}: CV(RMSE) {b.stats.cv_rmse:.1%}, NMBE "
                  f"{b.stats.nmbe:.2%}, R2 {b.stats.r2:.3f} (Guideline 14 {b.resolution} limits {b.limits[0]:.0%} / "
                  f"{b.limits[1]:.0%}: {'pass' if b.meets_g14 else 'FAIL'})")
    fsu = ", ".join(f"{k} %: {'inf' if math.isinf(v) else format(v, '.1%')}" for k, v in result.fsu.items())
    console.print(f"reporting {result.reporting_period[0]}..{result.reporting_period[1]}: predicted "
                  f"{result.predicted_kwh:,.0f} kWh, actual {result.actual_kwh:,.0f} kWh, avoided "
                  f"{result.avoided_kwh:,.0f} kWh = [bold]{result.savings_fraction:.1%}[/]; FSU {fsu}")
    console.print(f"outdoor temperature: {measured.evidence.temperature_point} "
                  f"({measured.evidence.temperature_source} sensor)", markup=False)
    console.print(f"verdict: {result.verdict}" + (" (recorded)" if recorded else ""))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
