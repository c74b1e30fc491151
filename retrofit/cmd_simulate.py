"""`retrofit backfill` (simulated history into the store) and `retrofit simulate` (serve a simulated site).

Two engineers share this module: ``register_backfill`` is the physics/history side, ``register_simulate`` the
protocol-server side. Keep each in its own function.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Attach `retrofit backfill` and `retrofit simulate`."""
    register_backfill(app)
    register_simulate(app)


# --- backfill (physics, faults, history) --------------------------------------------------------------


def parse_when(text: str, tz: str = "Asia/Shanghai") -> float:
    """A date (local midnight) or an ISO time (naive = local) -> UTC epoch seconds."""
    from zoneinfo import ZoneInfo

    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            return dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp()
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2026-03-01) or ISO time (2026-03-01T08:00)") from None
    return (t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz))).timestamp()


def register_backfill(app: typer.Typer) -> None:
    @app.command("backfill")
    def backfill_cmd(
        site_path: str = typer.Option("buildings/sites/yuzhong", "--site", help="site file or folder"),
        start: str = typer.Option(..., "--from", help="first day (local date, or ISO time)"),
        end: str = typer.Option(..., "--to", help="end (exclusive; local date or ISO time)"),
        scenario: str | None = typer.Option(None, "--scenario", help="fault scenario YAML (relative times count "
                                            "from --from)"),
        seed: int | None = typer.Option(None, "--seed", help="physics seed (default: the scenario's, else 0)"),
        step: str = typer.Option("15m", "--step", help="reading interval, e.g. 15m, 5m, 1h"),
        buildings: str | None = typer.Option(None, "--buildings", help="comma-separated building ids (default all)"),
        truth: str | None = typer.Option(None, "--truth", help="write the scenario's ground truth (JSON) here"),
        as_json: bool = typer.Option(False, "--json", help="print the result as one JSON line"),
    ) -> None:
        """Write simulated readings for a period straight into the configured telemetry store.

        Same physics, faults and retrofit as `retrofit simulate`; much faster than real time.

        Example: retrofit backfill --site buildings/sites/yuzhong --from 2025-10-01 --to 2026-11-01
        --scenario simulators/scenarios/ahu-faults.yaml --seed 7
        """
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from buildings.site import SiteError
        from retrofit.cli import console, err, fail, load_site_or_exit
        from retrofit.settings import SettingsError, load_settings
        from simulators.faults import ground_truth, parse_duration
        from simulators.history import backfill, scenario_faults
        from telemetry import StoreError, open_store

        site = load_site_or_exit(site_path)
        tz = site.buildings[0].timezone
        try:
            t0, t1 = parse_when(start, tz), parse_when(end, tz)
            step_s = parse_duration(step)
        except ValueError as exc:
            raise fail(str(exc), code=2) from None
        if t1 <= t0:
            raise fail(f"--to ({end}) must be after --from ({start})", code=2)
        bids = [b.strip() for b in buildings.split(",")] if buildings else None
        known = {b.id for b in site.buildings}
        if bids and not set(bids) <= known:
            raise fail(f"unknown building(s) {', '.join(sorted(set(bids) - known))}; known: "
                       f"{', '.join(sorted(known))}", code=2)
        try:
            faults, sc_seed = scenario_faults(scenario, site, t0, t1)
        except SiteError as exc:
            for p in exc.problems:
                err.print(str(p), style="red", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        seed_v = seed if seed is not None else (sc_seed or 0)
        try:
            store = open_store(load_settings())
        except (SettingsError, StoreError) as exc:
            raise fail(str(exc)) from None
        points = len([k for k in site.points if not bids or k.split("/")[0] in bids])
        total = points * int((t1 - t0) // step_s)
        try:
            with Progress(TextColumn("[bold]backfill"), BarColumn(), TextColumn("{task.completed:,.0f} readings"),
                          TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=as_json) as bar:
                task = bar.add_task("backfill", total=total)

                def progress(n: int, _reached: float) -> None:
                    bar.update(task, completed=n)

                stats = backfill(site, store, t0, t1, step_s=step_s, seed=seed_v, faults=faults,
                                 progress=progress, buildings=bids)
        except StoreError as exc:
            raise fail(f"the store refused the history: {exc}") from None
        finally:
            store.close()
        if truth:
            with open(truth, "w", encoding="utf-8") as fh:
                json.dump(ground_truth(faults, site), fh, indent=1)
        result: dict[str, Any] = {"readings": stats.readings, "points": stats.points,
                                  "seconds": round(stats.seconds, 2), "readings_per_s": round(stats.rate),
                                  "faults": len(faults), "seed": seed_v, "from": t0, "to": t1}
        if as_json:
            print(json.dumps(result))
        else:
            console.print(f"[green]OK[/] {stats.readings:,} readings of {stats.points} points in "
                          f"{stats.seconds:.1f} s ({stats.rate:,.0f}/s), {len(faults)} fault(s), seed {seed_v}")


# --- simulate (protocol servers) ----------------------------------------------------------------------


def register_simulate(app: typer.Typer) -> None:
    """`retrofit simulate`: the protocol-server engineer owns this function."""

    @app.command("simulate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def simulate_cmd() -> None:
        """Serve every device of a site over Modbus, BACnet and MQTT (not available yet: issue 3 part 2).

        Example: retrofit simulate --site buildings/sites/yuzhong --speed 60
        """
        from retrofit.cli import fail

        raise fail("`retrofit simulate` is not available yet (issue 3, protocol servers).", code=3)
