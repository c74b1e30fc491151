"""`retrofit rules ...`: list the rule library, check it against a site, replay history, run on MQTT readings,
and look at or acknowledge alarms."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from collections import Counter, defaultdict
from typing import Any

import typer

from buildings import DEFAULT_SITE
from retrofit.settings import settings_or_exit

rules_app = typer.Typer(help="The rules engine: fault rules, alarms.  Example: retrofit rules check --site "
                             "buildings/sites/yuzhong", no_args_is_help=True)

RULES_OPT = typer.Option(None, "--rules", help="a rule file or folder (default: the library in rules/library)")


def register(app: typer.Typer) -> None:
    """Attach `retrofit rules` to the main command."""
    app.add_typer(rules_app, name="rules")


def load_rules_or_exit(path: str | None) -> list[Any]:
    """The rule library at path (default: the built-in one); every problem printed and exit 2 when it is broken.

    Public: `retrofit collect` loads its live rules through it too.
    """
    from retrofit.cli import err
    from rules.model import LIBRARY_DIR, RuleError, load_rules

    try:
        return load_rules(path or LIBRARY_DIR)
    except RuleError as exc:
        for p in exc.problems:
            err.print(str(p), style="red", highlight=False, markup=False, soft_wrap=True)
        err.print(f"{len(exc.problems)} problem(s) in the rule library; nothing was loaded.")
        raise typer.Exit(2) from None


def _when(text: str, end: bool = False) -> float:
    """'2026-03-01' (local midnight in Asia/Shanghai unless a zone is given) or an ISO time -> epoch seconds."""
    from zoneinfo import ZoneInfo

    from retrofit.cli import fail

    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{text!r} is not a date; write 2026-03-01 or 2026-03-01T08:00+08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    if end and len(text) <= 10:
        t += dt.timedelta(days=1)  # --to 2026-03-31 includes that day
    return t.timestamp()


def _fmt_ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


@rules_app.command("list")
def rules_list(rules: str | None = RULES_OPT,
               as_json: bool = typer.Option(False, "--json", help="print JSON lines")) -> None:
    """List the rules: id, family, severity, scope, persistence, name and source.

    Example: retrofit rules list
    """
    from rich.table import Table

    from retrofit.cli import console

    lib = load_rules_or_exit(rules)
    if as_json:
        for r in lib:
            print(json.dumps({"id": r.id, "family": r.rule.family.value, "severity": r.rule.severity.value,
                              "scope": r.rule.scope, "for_s": r.rule.hold, "schedule": r.rule.schedule,
                              "name": r.rule.name.model_dump(), "source": r.rule.source}, ensure_ascii=False))
        return
    t = Table(title=f"{len(lib)} rules")
    for c in ("id", "family", "severity", "scope", "for", "name", "source"):
        t.add_column(c, overflow="fold")
    for r in lib:
        t.add_row(r.id, r.rule.family.value, r.rule.severity.value, r.rule.scope, f"{r.rule.hold:g}s",
                  f"{r.rule.name.zh} / {r.rule.name.en}", r.rule.source)
    console.print(t)
    fam = Counter(r.rule.family.value for r in lib)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(fam.items())))


@rules_app.command("check")
def rules_check(
    site: str = typer.Option(DEFAULT_SITE, "--site", help="site file or folder"),
    rules: str | None = RULES_OPT,
    strict: bool = typer.Option(False, "--strict", help="a rule that binds nothing is an error too"),
    as_json: bool = typer.Option(False, "--json", help="print the binding report as JSON"),
) -> None:
    """Check the rule library against a site: which rules bind where, which bind nothing, and every error
    (file, line, reason). Exits 2 on a rule or site error, 1 on override errors (or unbound rules with --strict).

    Example: retrofit rules check --site buildings/sites/yuzhong
    """
    from rich.table import Table

    from retrofit.cli import console, err, load_site_or_exit
    from rules.binding import bind

    lib = load_rules_or_exit(rules)
    s = load_site_or_exit(site)
    rep = bind(s, lib)
    by_rule = rep.by_rule()
    if as_json:
        print(json.dumps({
            "rules": len(lib), "bindings": len(rep.bindings),
            "bound": {rid: sorted({f"{b.building}/{b.subject}" for b in bs}) for rid, bs in by_rule.items()},
            "unbound": rep.unbound, "problems": [str(p) for p in rep.problems],
            "thresholds": {r.id: rule_thresholds(r) for r in lib}}, ensure_ascii=False))
    else:
        t = Table(title=f"{len(lib)} rules on {site}: {len(rep.bindings)} bindings")
        for c in ("rule", "family", "binds", "where", "thresholds", "for", "source"):
            t.add_column(c, overflow="fold")
        for r in lib:
            bs = by_rule.get(r.id, [])
            per_b = Counter(b.building for b in bs)
            where = ", ".join(f"{b} x{n}" for b, n in sorted(per_b.items())) or f"[yellow]{rep.unbound.get(r.id)}[/]"
            th = rule_thresholds(r)
            t.add_row(r.id, r.rule.family.value, str(len(bs)), where,
                      ", ".join(f"{k}={v:g}" for k, v in th["params"].items()) or "-",
                      f"{th['for_s']:g} s" + (f" / clear {th['clear_for_s']:g} s" if th["clear_for_s"] else ""),
                      th["source"], end_section=False)
        console.print(t)
    for p in rep.problems:
        err.print(str(p), style="red", highlight=False, markup=False, soft_wrap=True)
    if rep.unbound and not as_json:
        err.print(f"{len(rep.unbound)} rule(s) bind nothing on this site: {', '.join(sorted(rep.unbound))}",
                  highlight=False, markup=False)
    if rep.problems or (strict and rep.unbound):
        raise typer.Exit(1)


def rule_thresholds(r: Any) -> dict[str, Any]:
    """What a rule decides on, as the library declares it: parameters, persistence and their source."""
    return {"params": dict(r.rule.params), "for_s": r.rule.hold, "clear_for_s": r.rule.clear_for,
            "source": r.rule.source}


def _print_events(events: list[Any], lang: str) -> None:
    from retrofit.cli import console

    for e in events:
        msg = e.message_zh if lang == "zh" else e.message_en
        colour = {"raise": "red", "clear": "green"}.get(e.kind, "yellow")
        console.print(f"{_fmt_ts(e.ts)} [{colour}]{e.kind:9s}[/] {e.severity.value:8s} {e.rule:26s} "
                      f"{e.building}/{e.subject}: {msg}", highlight=False, soft_wrap=True)


def _summary(events: list[Any], title: str) -> None:
    from rich.table import Table

    from retrofit.cli import console

    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {"raise": 0, "clear": 0, "retrigger": 0})
    open_now: dict[tuple[str, str, str], bool] = {}
    meta: dict[str, tuple[str, str]] = {}
    for e in events:
        stats[e.rule][e.kind] += 1
        meta[e.rule] = (e.family.value, e.severity.value)
        if e.kind == "raise":
            open_now[e.key] = True
        elif e.kind == "clear":
            open_now[e.key] = False
    t = Table(title=title)
    for c in ("rule", "family", "severity", "raised", "cleared", "re-triggers", "open at end"):
        t.add_column(c)
    for rid in sorted(stats):
        st = stats[rid]
        still = sum(1 for k, v in open_now.items() if v and k[0] == rid)
        t.add_row(rid, *meta[rid], str(st["raise"]), str(st["clear"]), str(st["retrigger"]), str(still))
    console.print(t)


@rules_app.command("replay")
def rules_replay(
    site: str = typer.Option(DEFAULT_SITE, "--site", help="site file or folder"),
    start: str = typer.Option(..., "--from", help="first day (building local time), e.g. 2026-03-01"),
    end: str = typer.Option(..., "--to", help="last day, included, e.g. 2026-03-31"),
    rules: str | None = RULES_OPT,
    buildings: str | None = typer.Option(None, "--buildings", help="comma-separated building ids (default all)"),
    step: float = typer.Option(60.0, "--step", help="evaluation step in seconds of event time"),
    save: bool = typer.Option(False, "--save", help="also record the alarms in the records database"),
    quiet: bool = typer.Option(False, "--quiet", help="only the summary table"),
) -> None:
    """Replay stored history through the rules and print the alarms with a summary table.

    Reads the configured store (RETROFIT_INFLUX_URL, or the embedded store in RETROFIT_DATA_DIR).

    Example: retrofit rules replay --site buildings/sites/yuzhong --from 2026-03-01 --to 2026-03-31
    """
    from retrofit.cli import console, fail, load_site_or_exit
    from rules.engine import Engine
    from rules.runner import history, replay, sample_interval
    from telemetry import open_store
    from telemetry.store import StoreError

    t0, t1 = _when(start), _when(end, end=True)
    if t1 <= t0:
        raise fail("--to must not be before --from")
    lib = load_rules_or_exit(rules)
    s = load_site_or_exit(site)
    only = set(buildings.split(",")) if buildings else None
    if only:
        unknown = only - {b.id for b in s.buildings}
        if unknown:
            raise fail(f"unknown building(s) {', '.join(sorted(unknown))}; the site has "
                       f"{', '.join(b.id for b in s.buildings)}")
    settings = settings_or_exit()
    try:
        store = open_store(settings, readonly=True)
    except StoreError as exc:
        raise fail(str(exc)) from None
    points_all = [k for k in s.points if only is None or k.split("/")[0] in only]
    interval = sample_interval(store, points_all, t0, t1)
    if interval and interval > step:  # e.g. 15-minute backfilled history: evaluate on its grid
        console.print(f"history is sampled every {interval:g} s: evaluating every {interval:g} s "
                      "(staleness and poll-based rules use that interval)")
        step = interval
    eng = Engine(s, lib, step_s=step, buildings=only, min_poll_s=interval or 0.0)
    book = None
    if save:
        book = alarm_book(settings)
    points = [k for k in eng.keys if "/@" not in k]
    lang = settings.language
    try:
        res = replay(eng, history(store, points, t0, t1),
                     on_events=(lambda ev: (None if quiet else _print_events(ev, lang),
                                            book.apply(ev) if book else None)))
    except StoreError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
        if book:
            book.close()
    if res.readings == 0:
        console.print(f"no readings stored between {start} and {end} for this site: nothing to evaluate "
                      "(collect or backfill first: `retrofit backfill`)")
        raise typer.Exit(0)
    _summary(res.events, f"{len(res.events)} alarm events from {res.readings:,} readings "
                         f"({res.readings / max(res.seconds, 1e-9):,.0f} readings/s)")


@rules_app.command("run")
def rules_run(
    source: str = typer.Option(..., "--from", help="broker with the collectors' readings, mqtt://host:port"),
    buildings: str = typer.Option(..., "--buildings", help="comma-separated building ids this worker owns"),
    site: str = typer.Option(DEFAULT_SITE, "--site", help="site file or folder"),
    rules: str | None = RULES_OPT,
    step: float = typer.Option(60.0, "--step", help="evaluation step in seconds of event time"),
    lateness: float = typer.Option(120.0, "--lateness", help="how late (s) a reading may arrive and still count"),
    duration: float = typer.Option(0.0, "--duration", help="stop after this many seconds (0 = until Ctrl-C)"),
    client_id: str | None = typer.Option(None, "--client-id", help="MQTT session name (default: retrofit-rules-"
                                         "<building ids>); the broker keeps readings for it while it restarts"),
    as_json: bool = typer.Option(False, "--json", help="end with one JSON line: bindings, readings received and "
                                 "evaluated, alarm events, malformed and foreign payloads"),
) -> None:
    """Evaluate the rules on readings that edge collectors publish on MQTT, for the buildings this worker owns;
    alarms go to the records database and, when RETROFIT_MQTT_URL is set, out on MQTT.

    Give every building to exactly one worker: its rule state (windows, open alarms) lives in that worker only.
    On SIGTERM/Ctrl-C/--duration the readings still held for lateness are evaluated before it stops. The MQTT
    session is persistent and named after the buildings, so readings published while the worker restarts are
    delivered when it is back.

    Example: retrofit rules run --from mqtt://127.0.0.1:1883 --buildings jiefangbei-tower,huaxin-building
    """
    from retrofit.cli import console, load_site_or_exit
    from rules.engine import Engine

    lib = load_rules_or_exit(rules)
    s = load_site_or_exit(site)
    owned = _owned_buildings(s, buildings)
    settings = settings_or_exit()
    eng = Engine(s, lib, step_s=step, lateness_s=lateness, buildings=set(owned))
    book = alarm_book(settings, publish=True)
    sub = _subscribe(source, owned, settings, client_id)
    # say "reading" only once the broker confirmed the subscription (SUBACK): a supervisor or a test may wait for it
    state = "reading" if sub.subscribed.wait(5.0) else "waiting for the broker to subscribe to"
    console.print(f"rules: {len(eng.report.bindings)} bindings on {', '.join(owned)}; "
                  f"{state} {', '.join(sub.topics)} from {sub.host}:{sub.port}")
    received = _evaluate_until_stopped(eng, sub, book, settings.language, duration)
    console.print(f"rules: stopped; {eng.stats.readings} readings, {eng.stats.events} alarm events, "
                  f"{sub.bad} malformed payloads")
    if as_json:
        print(json.dumps({"buildings": owned, "bindings": len(eng.report.bindings), "received": received,
                          "evaluated": eng.stats.readings, "late": eng.stats.late, "events": eng.stats.events,
                          "by_kind": eng.stats.by_kind, "malformed": sub.bad, "foreign": sub.foreign}))


def _owned_buildings(s: Any, text: str) -> list[str]:
    """The building ids of a worker's --buildings option; none given or one the site lacks is refused."""
    from retrofit.cli import fail

    owned = [b.strip() for b in text.split(",") if b.strip()]
    unknown = set(owned) - {b.id for b in s.buildings}
    if not owned or unknown:
        raise fail(f"unknown building(s) {', '.join(sorted(unknown)) or '(none given)'}; the site has "
                   f"{', '.join(b.id for b in s.buildings)}")
    return owned


def alarm_book(settings: Any, publish: bool = False) -> Any:
    """The records database's alarm book with the configured flood control; with ``publish``, raise/clear
    events also go out on MQTT when RETROFIT_MQTT_URL is set."""
    from rules.alarms import AlarmBook, AlarmPublisher, FloodControl

    pub = None
    if publish and settings.mqtt_url:
        pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        pub = AlarmPublisher(settings.mqtt_url, settings.mqtt_topic_root, settings.mqtt_username, pw)
    return AlarmBook(settings.effective_records_url, publisher=pub, flood=FloodControl.from_settings(settings))


def _subscribe(source: str, owned: list[str], settings: Any, client_id: str | None) -> Any:
    """A persistent MQTT subscription to the owned buildings' readings, named after them unless told."""
    from collectors.mqtt_publish import decode_reading
    from retrofit.cmd_collect import session_client_id
    from rules.runner import MqttReadings

    pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return MqttReadings(source, owned, decode_reading, root=settings.mqtt_topic_root,
                        username=settings.mqtt_username, password=pw,
                        client_id=client_id or session_client_id("retrofit-rules", owned))


def _evaluate_until_stopped(eng: Any, sub: Any, book: Any, lang: str, duration: float) -> int:
    """Feed subscribed readings to the engine until SIGTERM, Ctrl-C or --duration; then evaluate what is still
    held for lateness and close the book. Returns how many readings were received."""
    stop = {"now": False}
    try:
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    except ValueError:  # not the main thread (embedded use): Ctrl-C / --duration still stop it
        pass
    deadline = time.monotonic() + duration if duration > 0 else float("inf")
    received = 0

    def record(events: list[Any]) -> None:
        if events:
            _print_events(events, lang)
            book.apply(events)
    try:
        while not stop["now"] and time.monotonic() < deadline:
            batch = sub.batch(max_wait_s=min(1.0, max(0.05, deadline - time.monotonic())))
            received += len(batch)
            record(eng.feed(batch) if batch else [])
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
        rest = sub.drain()  # what arrived after the last batch, then everything held back for lateness
        received += len(rest)
        record(eng.feed(rest) + eng.flush())
        book.close()
    return received


@rules_app.command("alarms")
def rules_alarms(
    state: str | None = typer.Option(None, "--state", help="raised, acknowledged or cleared"),
    buildings: str | None = typer.Option(None, "--buildings", help="comma-separated building ids"),
    family: str | None = typer.Option(None, "--family", help="sensor_health, energy or safety"),
    limit: int = typer.Option(50, "--limit"),
    suppressed: bool = typer.Option(False, "--suppressed", help="also alarms suppressed by maintenance or flood "
                                    "control (marked in the state column)"),
) -> None:
    """List recorded alarms, newest first; a grouped alarm shows its points; ends with what flood control
    suppressed in the last day.

    Example: retrofit rules alarms --state raised --family safety
    """
    from rich.table import Table

    from retrofit.cli import console

    settings = settings_or_exit()
    book = alarm_book(settings)
    only = buildings.split(",") if buildings else None
    try:
        rows = book.list(buildings=only, family=family, state=state, limit=limit, include_suppressed=suppressed)
        floods = book.floods(buildings=only)
    finally:
        book.close()
    t = Table(title=f"{len(rows)} alarms")
    for c in ("id", "raised", "state", "severity", "rule", "where", "x", "message"):
        t.add_column(c, overflow="fold")
    for a in rows:
        msg = a.message_zh if settings.language == "zh" else a.message_en
        more = ", ..." if len(a.points) > 3 else ""
        where = (f"{a.building}: {len(a.points)} points ({', '.join(a.points[:3])}{more})" if a.points
                 else f"{a.building}/{a.subject}")
        state_txt = a.state + (" (flood-suppressed)" if a.flood and a.suppressed else " (suppressed)"
                               if a.suppressed else "")
        t.add_row(str(a.id), _fmt_ts(a.raised_at), state_txt, a.severity, a.rule, where, str(a.retriggers), msg)
    console.print(t)
    for f in floods:
        console.print(f"{f.building}: {'ALARM FLOOD: ' if f.active else ''}{f.recent} new alarms in the last "
                      f"{book.flood.window_s / 60:g} min (limit {f.limit}); flood control suppressed {f.suppressed} "
                      f"in the last day ({', '.join(f'{r} x{n}' for r, n in sorted(f.by_rule.items())) or 'none'})"
                      "; list them with --suppressed", markup=False)


@rules_app.command("maintain")
def rules_maintain(
    building: str = typer.Option(..., "--building", help="building id"),
    start: str = typer.Option(..., "--from", help="start, e.g. 2026-03-10T08:00 (building local time)"),
    end: str = typer.Option(..., "--to", help="end, e.g. 2026-03-10T18:00"),
    equipment: str | None = typer.Option(None, "--equipment", help="only this equipment (default: the building)"),
    reason: str = typer.Option("", "--reason", help="what the maintenance is"),
    user: str = typer.Option("", "--user", help="who declares it"),
) -> None:
    """Declare a maintenance window: non-safety alarms raised in it are recorded but suppressed; safety alarms
    are still raised and published, flagged as during maintenance.

    Example: retrofit rules maintain --building jiefangbei-tower --equipment ahu-2 --from 2026-03-10T08:00
    --to 2026-03-10T18:00 --reason "coil cleaning" --user li.na
    """
    from retrofit.cli import console, fail
    from rules.alarms import AlarmError

    t0, t1 = _when(start), _when(end, end=True)
    settings = settings_or_exit()
    book = alarm_book(settings)
    try:
        w = book.suppress(building, t0, t1, equipment=equipment, reason=reason, user=user)
    except AlarmError as exc:
        raise fail(str(exc)) from None
    finally:
        book.close()
    console.print(f"maintenance window {w.id}: {building}{'/' + equipment if equipment else ''} "
                  f"{_fmt_ts(t0)} to {_fmt_ts(t1)}")


@rules_app.command("ack")
def rules_ack(
    alarm_id: int = typer.Argument(..., help="the alarm id (see `retrofit rules alarms`)"),
    user: str = typer.Option(..., "--user", help="who acknowledges"),
    comment: str = typer.Option("", "--comment", help="what was done or found"),
) -> None:
    """Acknowledge an alarm: who, when, and a comment.

    Example: retrofit rules ack 12 --user zhang.wei --comment "damper actuator replaced"
    """
    from retrofit.cli import console, fail
    from rules.alarms import AlarmError

    settings = settings_or_exit()
    book = alarm_book(settings)
    try:
        a = book.acknowledge(alarm_id, user, comment)
    except AlarmError as exc:
        raise fail(str(exc)) from None
    finally:
        book.close()
    console.print(f"alarm {a.id} ({a.rule} on {a.building}/{a.subject}) acknowledged by {a.acked_by}")
