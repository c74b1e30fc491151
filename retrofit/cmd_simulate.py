"""`retrofit backfill` (simulated history into the store) and `retrofit simulate` (serve a simulated site).

Two engineers share this module: the backfill section (``register_backfill`` and its helpers) is the
physics/history side, the simulate section (``register_simulate``, the fault commands) the protocol-server
side. Keep each in its own section.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import typer

from buildings import DEFAULT_SITE
from retrofit.settings import Settings, settings_or_exit, settings_or_none


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
    """`retrofit backfill`: the physics/history engineer owns this section."""
    app.command("backfill")(backfill_cmd)


def backfill_cmd(
    site_path: str = typer.Option(DEFAULT_SITE, "--site", help="site file or folder"),
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
    --scenario simulators/scenarios/march-2026-all-faults.yaml --seed 7
    """
    from retrofit.cli import load_site_or_exit
    from simulators.faults import ground_truth

    site = load_site_or_exit(site_path)
    t0, t1, step_s = _period(start, end, step, site.buildings[0].timezone)
    bids = _building_ids(buildings, site)
    faults, sc_seed = scenario_or_exit(scenario, site, t0, t1)
    seed_v = seed if seed is not None else (sc_seed or 0)
    stats = _write_history(site, _store_for(site, t0, start), t0, t1, step_s, seed_v, faults, bids, as_json)
    if truth:
        with open(truth, "w", encoding="utf-8") as fh:
            json.dump(ground_truth(faults, site), fh, indent=1)
    _report_backfill(stats, len(faults), seed_v, t0, t1, as_json)


def _period(start: str, end: str, step: str, tz: str) -> tuple[float, float, float]:
    """--from, --to and --step as (t0, t1, step seconds); a bad or empty period exits 2."""
    from retrofit.cli import fail
    from simulators.faults import parse_duration

    try:
        t0, t1 = parse_when(start, tz), parse_when(end, tz)
        step_s = parse_duration(step)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    if t1 <= t0:
        raise fail(f"--to ({end}) must be after --from ({start})", code=2)
    return t0, t1, step_s


def _building_ids(buildings: str | None, site: Any) -> list[str] | None:
    """--buildings as a list of ids of the site (None: all); an unknown id exits 2."""
    from retrofit.cli import fail

    bids = [b.strip() for b in buildings.split(",")] if buildings else None
    known = {b.id for b in site.buildings}
    if bids and not set(bids) <= known:
        raise fail(f"unknown building(s) {', '.join(sorted(set(bids) - known))}; known: "
                   f"{', '.join(sorted(known))}", code=2)
    return bids


def scenario_or_exit(scenario: str | None, site: Any, t0: float, t1: float = math.inf) -> tuple[list, int | None]:
    """The faults (and seed) of a scenario file, relative times from t0; every problem printed, and exit 2."""
    from buildings.site import SiteError
    from retrofit.cli import err
    from simulators.history import scenario_faults

    try:
        return scenario_faults(scenario, site, t0, t1)
    except SiteError as exc:
        for p in exc.problems:
            err.print(str(p), style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _store_for(site: Any, t0: float, start: str) -> Any:
    """The configured store, refusing a period InfluxDB's raw retention would drop (exit 2)."""
    from retrofit.cli import fail
    from telemetry import StoreError, open_store

    settings = settings_or_exit()
    retention = _influx_retention_s(settings)
    if retention and t0 < time.time() - retention:
        raise fail(f"--from {start} is older than InfluxDB's raw retention ({settings.influx_raw_retention}, "
                   "RETROFIT_INFLUX_RAW_RETENTION): InfluxDB would drop those readings. Backfill a later "
                   "period or raise the retention.", code=2)
    try:
        return open_store(settings, site=site)  # InfluxDB writes get equipment/brick/subitem tags
    except StoreError as exc:
        raise fail(str(exc)) from None


def _write_history(site: Any, store: Any, t0: float, t1: float, step_s: float, seed: int, faults: list,
                   bids: list[str] | None, as_json: bool) -> Any:
    """Backfill with a progress bar (none with --json); the store is closed afterwards."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from retrofit.cli import err, fail
    from simulators.history import backfill
    from telemetry import StoreError

    points = len([k for k in site.points if not bids or k.split("/")[0] in bids])
    total = points * int((t1 - t0) // step_s)
    try:
        with Progress(TextColumn("[bold]backfill"), BarColumn(), TextColumn("{task.completed:,.0f} readings"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=as_json) as bar:
            task = bar.add_task("backfill", total=total)

            def progress(n: int, _reached: float) -> None:
                bar.update(task, completed=n)

            return backfill(site, store, t0, t1, step_s=step_s, seed=seed, faults=faults, progress=progress,
                            buildings=bids)
    except StoreError as exc:
        raise fail(f"the store refused the history: {exc}") from None
    finally:
        store.close()


def _report_backfill(stats: Any, faults: int, seed: int, t0: float, t1: float, as_json: bool) -> None:
    from retrofit.cli import console

    if as_json:
        result: dict[str, Any] = {"readings": stats.readings, "points": stats.points,
                                  "seconds": round(stats.seconds, 2), "readings_per_s": round(stats.rate),
                                  "faults": faults, "seed": seed, "from": t0, "to": t1}
        print(json.dumps(result))
    else:
        console.print(f"[green]OK[/] {stats.readings:,} readings of {stats.points} points in "
                      f"{stats.seconds:.1f} s ({stats.rate:,.0f}/s), {faults} fault(s), seed {seed}")


def _influx_retention_s(settings: Any) -> float | None:
    """InfluxDB's raw retention in seconds, or None (embedded store, infinite or unreadable retention)."""
    from simulators.faults import parse_duration

    if not settings.influx_url:
        return None
    text = str(settings.influx_raw_retention).strip().lower()
    weeks = text[:-1] if text.endswith("w") else None
    try:
        return float(weeks) * 7 * 86400 if weeks else parse_duration(text)
    except ValueError:
        return None


# --- simulate (protocol servers) ----------------------------------------------------------------------


def register_simulate(app: typer.Typer) -> None:
    """`retrofit simulate`: the protocol-server engineer owns this section."""
    sim_app = typer.Typer(help="Serve a simulated site over Modbus TCP, BACnet/IP and MQTT; inject faults live.\n\n"
                          "Example: retrofit simulate --site buildings/sites/yuzhong --speed 60",
                          invoke_without_command=True, rich_markup_mode="rich")
    fault_app = typer.Typer(help="Inject, clear and list faults on a running simulator (over its loopback control "
                            "endpoint).  Example: retrofit simulate fault inject --kind device_offline "
                            "--target jiefangbei-tower/meter-main", no_args_is_help=True)
    sim_app.add_typer(fault_app, name="fault")
    app.add_typer(sim_app, name="simulate")
    sim_app.callback(invoke_without_command=True)(simulate_cmd)
    fault_app.command("inject")(fault_inject)
    fault_app.command("clear")(fault_clear)
    fault_app.command("list")(fault_list)
    fault_app.command("kinds")(fault_kinds)


def simulate_cmd(
    ctx: typer.Context,
    site_path: str = typer.Option(DEFAULT_SITE, "--site", help="site file or folder"),
    scenario: str | None = typer.Option(None, "--scenario", help="fault scenario YAML (relative times count "
                                        "from the start)"),
    speed: float = typer.Option(1.0, "--speed", help="simulated seconds per real second (60 = a minute a "
                                "second)"),
    seed: int | None = typer.Option(None, "--seed", help="physics seed (default: the scenario's, else 0)"),
    start: str | None = typer.Option(None, "--start", help="simulated start time (local date or ISO time; "
                                     "default now)"),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url", help="broker for the wireless sensors, e.g. "
                                        "mqtt://127.0.0.1:1883 (default: settings mqtt_url)"),
    list_endpoints: bool = typer.Option(False, "--list-endpoints", help="print the endpoints and exit"),
    as_json: bool = typer.Option(False, "--json", help="endpoints as JSON (one array with --list-endpoints; "
                                 "one line each, then a ready line, while serving)"),
    free_ports: bool = typer.Option(False, "--free-ports", help="move every Modbus/BACnet endpoint to a free "
                                    "loopback port (tests, a second simulator)"),
    control_file: str | None = typer.Option(None, "--control-file", help="where the control endpoint's "
                                            "port and token go (default: DATA_DIR/simulate-control.json)"),
    refresh_s: float = typer.Option(1.0, "--refresh", help="seconds between register/object refreshes"),
) -> None:
    """Serve every device of a site until Ctrl-C or SIGTERM, printing each endpoint.

    Modbus TCP: one server per host:port, every unit id behind it. BACnet/IP: one device per port.
    MQTT: each wireless sensor publishes JSON to the broker at its interval. Faults: a --scenario file,
    or live with `retrofit simulate fault inject`.

    Example: retrofit simulate --site buildings/sites/yuzhong --speed 60 --mqtt-url mqtt://127.0.0.1:1883
    """
    if ctx.invoked_subcommand is not None:
        return
    from pathlib import Path

    from retrofit.cli import fail, load_site_or_exit
    from simulators.site_sim import SiteSimulation

    site = load_site_or_exit(site_path)
    settings = settings_or_none()
    url = mqtt_url or (settings.mqtt_url if settings else None)
    if free_ports:
        site = site.with_free_ports()
    if list_endpoints:
        _print_planned(site, url, as_json)
        return
    if speed <= 0:
        raise fail("--speed must be > 0 (1 = real time)", code=2)
    try:
        t0 = parse_when(start, site.buildings[0].timezone) if start else time.time()
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    faults, sc_seed = scenario_or_exit(scenario, site, t0)
    values = SiteSimulation(site, seed=seed if seed is not None else (sc_seed or 0), speed=speed, start=t0,
                            faults=faults)
    ctl = Path(control_file) if control_file else _default_control_file(settings)
    user = settings.mqtt_username if settings else None
    password = settings.mqtt_password.get_secret_value() if settings and settings.mqtt_password else None
    options = {"mqtt_url": url, "speed": speed, "refresh_s": refresh_s, "mqtt_username": user,
               "mqtt_password": password}
    asyncio.run(_serve(site, values, options, ctl, as_json))


def _print_planned(site: Any, url: str | None, as_json: bool) -> None:
    """--list-endpoints: what would be served, without opening anything."""
    from retrofit.cli import console
    from simulators.serve import planned_endpoints

    eps = planned_endpoints(site, url)
    if as_json:
        print(json.dumps([e.as_dict() for e in eps]))
    else:
        for e in eps:
            console.print(str(e), highlight=False, markup=False, soft_wrap=True)


async def _serve(site: Any, values: Any, options: dict[str, Any], ctl: Any, as_json: bool) -> None:
    """Serve until SIGINT or SIGTERM, then stop every server."""
    from retrofit.cli import console, fail
    from simulators.serve import ControlError, Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(site, values, **options)
    try:
        await sim.start(ctl)
    except (OSError, ControlError) as exc:
        raise fail(str(exc)) from None
    try:
        _announce(sim, ctl, options["speed"], as_json)
        await stop.wait()
    finally:
        await sim.stop()
    if not as_json:
        console.print("stopped")


def _announce(sim: Any, ctl: Any, speed: float, as_json: bool) -> None:
    """Print every endpoint being served (JSON lines and a ready line with --json)."""
    from retrofit.cli import console, err

    eps = sim.endpoints()
    if as_json:
        for e in eps:
            print(json.dumps(e.as_dict()), flush=True)
        print(json.dumps({"ready": True, "endpoints": len(eps), "control_file": str(ctl), "speed": speed,
                          "pid": os.getpid()}), flush=True)
        return
    for e in eps:
        console.print(str(e), highlight=False, markup=False, soft_wrap=True)
    for note in sim.skipped:
        err.print(f"[yellow]not served:[/] {note}")
    console.print(f"[green]serving[/] {len(eps)} endpoints at {speed:g}x; faults: retrofit simulate fault inject "
                  f"--control-file {ctl} ...; Ctrl-C to stop")


def fault_inject(
    kind: str = typer.Option(..., "--kind", help="fault kind, e.g. device_offline, device_errors, "
                             "device_garbage, sensor_stuck, after_hours_hvac, co_garage"),
    target: str = typer.Option(..., "--target", help="building, building/device, building/equipment or "
                               "building/point"),
    duration: str | None = typer.Option(None, "--duration", help="simulated time it lasts, e.g. 30m, 2h "
                                        "(default: until cleared)"),
    param: list[str] = typer.Option([], "--param", help="NAME=NUMBER in the parameter's unit, percent as "
                                    "percent (--param drop=6 is 6 %); repeatable; units and ranges: "
                                    "docs/simulators.md"),
    control_file: str | None = typer.Option(None, "--control-file", help="the simulator's control file"),
) -> None:
    """Start a fault on the running simulator now.

    Example: retrofit simulate fault inject --kind device_offline --target jiefangbei-tower/meter-main
    """
    request = {"op": "inject", "kind": kind, "target": target, "duration_s": _duration_s(duration),
               "params": _params(param)}
    f = _control(request, control_file)["fault"]
    print(f"injected {f['id']}: {f['kind']} on {f['target']}"
          + (f" until {f['end']:.0f}" if f.get("end") else " until cleared"))


def _params(items: list[str]) -> dict[str, float]:
    """--param NAME=NUMBER options as a dict; anything else exits 2."""
    from retrofit.cli import fail

    params: dict[str, float] = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise fail(f"--param {item!r}: use NAME=NUMBER", code=2) from None
        if not eq or not name.strip():
            raise fail(f"--param {item!r}: use NAME=NUMBER", code=2)
    return params


def _duration_s(duration: str | None) -> float | None:
    from retrofit.cli import fail
    from simulators.faults import parse_duration

    if not duration:
        return None
    try:
        return parse_duration(duration)
    except ValueError as exc:
        raise fail(f"--duration: {exc}", code=2) from None


def fault_clear(
    fault_id: str | None = typer.Option(None, "--id", help="the id `inject` printed"),
    target: str | None = typer.Option(None, "--target", help="clear every injected fault on this target"),
    all_: bool = typer.Option(False, "--all", help="clear every injected fault"),
    control_file: str | None = typer.Option(None, "--control-file", help="the simulator's control file"),
) -> None:
    """End injected faults now (by id, by target, or all).

    Example: retrofit simulate fault clear --target jiefangbei-tower/meter-main
    """
    from retrofit.cli import fail

    if not (fault_id or target or all_):
        raise fail("say which: --id ID, --target TARGET or --all", code=2)
    ans = _control({"op": "clear", "id": fault_id, "target": target}, control_file)
    for f in ans["cleared"]:
        print(f"cleared {f['id']}: {f['kind']} on {f['target']}")
    if not ans["cleared"]:
        print("nothing to clear")


def fault_list(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    control_file: str | None = typer.Option(None, "--control-file", help="the simulator's control file"),
) -> None:
    """List the faults injected into the running simulator that are still active.

    Example: retrofit simulate fault list --json
    """
    ans = _control({"op": "list"}, control_file)
    if as_json:
        print(json.dumps(ans["faults"]))
        return
    for f in ans["faults"]:
        print(f"{f['id']}: {f['kind']} on {f['target']}" + (f" until {f['end']:.0f}" if f.get("end") else ""))
    if not ans["faults"]:
        print("no injected faults")


def fault_kinds(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the fault kinds: what each targets, the rule family that should catch it, and each parameter's unit,
    range and default (what scenario files and --param are checked against; percent is written as percent).

    Example: retrofit simulate fault kinds
    """
    from simulators.faults import KINDS

    rows = [{"kind": k.value, "targets": list(i.targets), "family": i.family, "rule": i.rule, "what": i.what,
             "params": {n: {"unit": p.unit, "range": p.range_text(),
                            "default": None if math.isnan(p.default) else p.default, "note": p.doc}
                        for n, p in i.params.items()}} for k, i in KINDS.items()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        print(f"{r['kind']} ({', '.join(r['targets'])}) -> {r['family']} / {r['rule']}")
        for n, p in r["params"].items():
            default = "" if p["default"] is None else f"; default {p['default']:g}"
            print(f"    {n}: {p['unit']}, {p['range']}{default}" + (f" ({p['note']})" if p["note"] else ""))


def _default_control_file(settings: Settings | None) -> Path:
    return Path(settings.data_dir if settings else "retrofit-data") / "simulate-control.json"


def _control(request: dict[str, Any], control_file: str | None) -> dict[str, Any]:
    """One request to the running simulator; a refusal or a dead simulator is a clear error (exit 1)."""
    from buildings.simcontrol import ControlError, control_request
    from retrofit.cli import fail

    path = Path(control_file) if control_file else _default_control_file(settings_or_none())
    try:
        ans = control_request(path, request)
    except ControlError as exc:
        raise fail(str(exc)) from None
    if not ans.get("ok"):
        raise fail(str(ans.get("error", "the simulator refused the request")))
    return ans
