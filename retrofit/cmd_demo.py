"""`retrofit demo`: the whole system on embedded defaults, on one machine, with one command.

It composes the real parts, nothing simulated beyond the buildings themselves: the sample district is loaded
into the records database with a user for each role, history is backfilled into the telemetry store, the
simulated buildings are served over real Modbus TCP, BACnet/IP and MQTT (`retrofit simulate`, a child process),
the collectors and rules poll them (`retrofit collect`, a child process), the dashboard serves the result
(`retrofit dashboard`, a child process), and live faults are injected on a schedule through the simulator's
control endpoint. Ctrl-C (or --run-for) stops every child cleanly.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from buildings import SAMPLE_SITE
from retrofit.settings import settings_or_exit

HISTORY_MARKER = "history.json"


@dataclass
class LiveFault:
    """A fault the demo injects at `slot` x the fault spacing (real seconds) into the live phase."""

    slot: int
    kind: str
    target: str
    params: dict[str, float] = field(default_factory=dict)
    duration: str | None = None


# Faults chosen to show each rule family within the first minutes at real-time speed: safety sensors that trip,
# a switch room heating fast, a device that goes offline (sensor health), HVAC left on after hours (energy).
LIVE_FAULTS = [
    LiveFault(1, "water_leak", "huaxin-building/leak-b1pump-wet"),
    LiveFault(2, "device_offline", "jiefangbei-tower/ahu-2-ctl", duration="10m"),
    LiveFault(3, "switch_room_overheat", "chaotianmen-harbour/switch-room", {"rise_per_h": 600.0, "max": 55.0}),
    LiveFault(4, "co_garage", "chaotianmen-harbour/garage-b1", {"rise_per_h": 6000.0, "max": 250.0}),
    LiveFault(5, "smoke", "huaxin-building/smoke-swr-alarm"),
]


def _port_free(port: int, udp: bool = False) -> bool:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare_site(site_path: Path, data_dir: Path) -> Path:
    """The site the demo serves: the sample itself when its ports are free, else a copy on free ports.

    The copy is written as YAML into DATA_DIR/site so that the simulator, the collector and the dashboard (three
    processes) agree on the addresses.
    """
    from buildings.site import Protocol, load_site

    site = load_site(str(site_path))
    busy = [d for _, d in site.devices.values() if d.protocol != Protocol.MQTT and d.port
            and not _port_free(d.port, udp=d.protocol == Protocol.BACNET)]
    if not busy:
        return site_path
    return Path(site.with_free_ports().write_yaml(data_dir / "site"))


def history_window(site: Any, now: float, days: int,
                   baseline: bool = True) -> list[tuple[float, float, list[str] | None]]:
    """Backfill spans: `days` of the whole district ending now, plus, for each building retrofitted before that
    window (with `baseline`), its history from 12 months before its retrofit, so that measured savings have a
    full-year baseline and the whole reporting period."""
    from zoneinfo import ZoneInfo

    step = 900
    end = now - now % step
    start = end - days * 86400
    spans: list[tuple[float, float, list[str] | None]] = [(start, end, None)]
    for b in site.buildings:
        if b.retrofit_date is None or not baseline:
            continue
        rd = dt.datetime.combine(b.retrofit_date, dt.time(), ZoneInfo(b.timezone)).timestamp()
        base_start = rd - 365 * 86400
        if base_start < start:
            spans.append((base_start, start, [b.id]))
    return spans


def ensure_records(settings: Any, site_path: Path, console: Any) -> list[tuple[str, str, str, str | None]]:
    """Load the sample district into the records DB and create one user per role; returns new sign-ins."""
    from sqlalchemy import select

    from buildings.records import session_factory
    from buildings.records.program import import_sample
    from buildings.site import load_site
    from dashboard.auth import User, add_user, create_tables

    url = settings.effective_records_url
    site = load_site(str(site_path))
    engine = import_sample(url, site, "demo")
    sf = session_factory(engine)
    create_tables(engine)
    owners: list[tuple[str, str]] = []
    for b in site.buildings:  # the biggest owner of each single- or few-owner building gets a sign-in
        top = max(b.owners, key=lambda o: o.area_m2)
        if top.owner not in [o for o, _ in owners]:
            owners.append((top.owner, b.id))
    wanted: list[tuple[str, str, str | None]] = [("district", "district", None), ("tech", "technician", None)]
    wanted += [(f"owner-{oid}"[:64], "owner", oid) for oid, _ in owners[:3]]
    created = []
    with sf() as s:
        existing = set(s.scalars(select(User.username)))
    for name, role, owner in wanted:
        if name in existing:
            continue
        pw = secrets.token_urlsafe(12)
        add_user(engine, name, pw, role, owner)
        created.append((name, pw, role, owner))
    engine.dispose()
    return created


def backfill_history(settings: Any, site_path: Path, days: int, console: Any, as_json: bool,
                     baseline: bool = True) -> dict[str, Any]:
    """Backfill history once per data dir (a marker records what was written)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from buildings.site import load_site
    from simulators.history import backfill
    from telemetry import open_store

    marker = settings.data_dir / HISTORY_MARKER
    if marker.exists():
        return json.loads(marker.read_text())
    site = load_site(str(site_path))
    spans = history_window(site, time.time(), days, baseline)
    store = open_store(settings)
    total_s = sum(e - s for s, e, _ in spans)
    written = 0
    t0 = time.perf_counter()
    with Progress(TextColumn("[bold]history[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[n]:>12,} readings"), TimeRemainingColumn(), console=console,
                  disable=as_json) as bar:
        task = bar.add_task("history", total=total_s, n=0)
        done_s = 0.0
        for start, end, only in spans:
            def progress(n: int, reached: float, _start: float = start, _done: float = done_s,
                         _written: int = written) -> None:
                bar.update(task, completed=_done + (reached - _start), n=_written + n)

            stats = backfill(site, store, start, end, buildings=only, progress=progress)
            written += stats.readings
            done_s += end - start
            bar.update(task, completed=done_s, n=written)
    store.close()
    result = {"readings": written, "seconds": round(time.perf_counter() - t0, 1),
              "spans": [[s, e, only] for s, e, only in spans]}
    marker.write_text(json.dumps(result))
    return result


class Children:
    """The demo's child processes, stopped together (SIGINT first, so each flushes what it holds)."""

    def __init__(self, log_dir: Path) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_dir = log_dir

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        """Stop the children newest first (dashboard, collector, then simulator), so the collector flushes its
        readings and alarms while the devices it polls still answer."""
        for p in reversed(list(self.procs.values())):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def wait_for(predicate: Any, timeout: float, what: str, children: Children) -> None:
    """Poll until predicate() is true; a child that died or a timeout is an error naming its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        dead = children.dead()
        if dead:
            raise RuntimeError(f"{dead[0]} exited early; see {children.log_dir / (dead[0] + '.log')}")
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s; see the logs in {children.log_dir}")


def dashboard_health(port: int) -> bool:
    import requests

    try:
        r = requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=3)
        return r.status_code == 200 and r.text.strip() == "ok"
    except requests.RequestException:
        return False


def summarise(settings: Any, site_path: Path, live_start: float, dash_ok: bool | None) -> dict[str, Any]:
    """What the live phase did (read after the children stopped and flushed): readings stored per protocol,
    alarms by family, devices by health, and whether the dashboard answered its health check."""
    from sqlalchemy import func, select

    from buildings.records import make_engine, session_factory
    from buildings.site import load_site
    from rules.alarms import Alarm
    from telemetry import open_store

    site = load_site(str(site_path))
    store = open_store(settings)
    per_proto: dict[str, int] = {}
    for proto in ("modbus", "bacnet", "mqtt"):
        keys = [k for k, r in site.points.items() if r.point.protocol_family == proto]
        per_proto[proto] = store.count(points=keys, start=live_start) if keys else 0
    store.close()
    engine = make_engine(settings.effective_records_url)
    with session_factory(engine)() as s:
        rows = s.execute(select(Alarm.family, func.count()).where(Alarm.raised_at >= live_start - 60)
                         .group_by(Alarm.family)).all()
    engine.dispose()
    status_path = settings.data_dir / "collector-status.json"
    health: dict[str, int] = {}
    if status_path.exists():
        try:
            health = json.loads(status_path.read_text()).get("summary", {}).get("health", {})
        except (OSError, ValueError):
            health = {}
    return {
        "readings_by_protocol": per_proto,
        "alarms_by_family": {f: n for f, n in rows},
        "devices_by_health": health,
        "dashboard_health": dash_ok,
    }


@dataclass
class LivePhase:
    """The demo's live phase: simulator, collector and dashboard as child processes, and the faults it injects."""

    out: Any
    children: Children
    env: dict[str, str]
    site_path: Path
    data_dir: Path
    mqtt_url: str
    exe: list[str] = field(default_factory=lambda: [sys.executable, "-m", "retrofit.cli"])

    @property
    def control(self) -> Path:
        return self.data_dir / "simulate-control.json"

    def start(self, dash_port: int | None) -> None:
        """Start the simulator, then the collector and the dashboard, each once the one before answers."""
        self.control.unlink(missing_ok=True)
        self.children.start("simulate", [*self.exe, "simulate", "--site", str(self.site_path), "--mqtt-url",
                                         self.mqtt_url, "--control-file", str(self.control)], self.env)
        wait_for(self.control.exists, 60, "the simulator", self.children)
        self.children.start("collect", [*self.exe, "collect", "--site", str(self.site_path), "--mqtt-url",
                                        self.mqtt_url, "--data-dir", str(self.data_dir)], self.env)
        if dash_port:
            self.children.start("dashboard", [*self.exe, "dashboard", "--port", str(dash_port), "--site",
                                              str(self.site_path)], self.env)
            wait_for(lambda: dashboard_health(dash_port), 90, "the dashboard", self.children)

    def inject(self, f: LiveFault) -> None:
        """Inject one fault through `retrofit simulate fault inject` (as a technician would) and say how it went."""
        argv = [*self.exe, "simulate", "fault", "inject", "--kind", f.kind, "--target", f.target,
                "--control-file", str(self.control)]
        for k, v in f.params.items():
            argv += ["--param", f"{k}={v}"]
        if f.duration:
            argv += ["--duration", f.duration]
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30)
        ok = "injected" if r.returncode == 0 else f"failed: {(r.stderr or r.stdout).strip()[-200:]}"
        self.out.print(f"fault {f.kind} on {f.target}: {ok}", markup=False)

    def run(self, since: float, run_for: float, faults: list[LiveFault], spacing: float) -> None:
        """Until --run-for has passed (forever with 0): inject each fault at its slot, watch the children."""
        pending = list(faults)
        while run_for <= 0 or time.time() - since < run_for:
            elapsed = time.time() - since
            while pending and pending[0].slot * spacing <= elapsed:
                self.inject(pending.pop(0))
            dead = self.children.dead()
            if dead:
                raise RuntimeError(f"{dead[0]} stopped unexpectedly; see {self.children.log_dir / (dead[0] + '.log')}")
            time.sleep(1)


def announce(out: Any, live: LivePhase, broker: Any, dash_port: int | None,
             created: list[tuple[str, str, str, str | None]]) -> None:
    """What is running, where the dashboard is, the new sign-ins (shown once) and where the logs are."""
    out.print("[green]running[/]: simulated buildings over Modbus TCP, BACnet/IP and MQTT "
              f"({live.mqtt_url}{', embedded broker' if broker else ''}); collectors and rules live")
    if dash_port:
        out.print(f"[bold]dashboard:[/] http://127.0.0.1:{dash_port}")
    if created:
        out.print("sign-ins (shown once; store them now):")
        for name, pw, role, owner in created:
            out.print(f"  {name:28s} {pw}  ({role}{', owner ' + owner if owner else ''})", markup=False)
    else:
        out.print("sign-ins: created by an earlier run in this directory (see `retrofit users list`)")
    out.print(f"logs: {live.children.log_dir}   stop: Ctrl-C")


def _dashboard_port(settings: Any, port: int | None, no_dashboard: bool) -> int | None:
    """--port, else the configured port when free, else a free one; None with --no-dashboard."""
    from retrofit.devservers import free_port

    if no_dashboard:
        return None
    return port or (settings.dashboard_port if _port_free(settings.dashboard_port) else free_port())


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def demo(
    data_dir: Path = typer.Option(Path("retrofit-data"), "--dir", help="working directory for databases and logs"),
    history_days: int = typer.Option(395, help="days of district history to backfill (395 = 13 months)"),
    run_for: float = typer.Option(0, help="run headless for this many seconds, then stop (0: until Ctrl-C)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary at the end (with --run-for)"),
    port: int | None = typer.Option(None, help="dashboard port (default: settings.dashboard_port, or a free one)"),
    no_dashboard: bool = typer.Option(False, "--no-dashboard", help="do not start the dashboard"),
    faults: bool = typer.Option(True, "--faults/--no-faults", help="inject live faults over the first minutes"),
    fault_spacing: float = typer.Option(30, help="seconds between the live faults the demo injects"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline",
                                  help="also backfill a pre-retrofit year for retrofitted buildings (for savings)"),
) -> None:
    """Run the whole system on embedded defaults: sample district, history, simulators, collectors, rules,
    dashboard.

    Creates DATA_DIR, loads the Yuzhong sample district with a user per role (passwords printed once),
    backfills 13 months of history (plus a pre-retrofit baseline year for retrofitted buildings), serves the
    simulated buildings over Modbus TCP, BACnet/IP and MQTT (an embedded broker unless RETROFIT_MQTT_URL is set),
    collects and evaluates rules live, injects a few faults, and prints the dashboard URL. With
    RETROFIT_INFLUX_URL set, history and readings go to that InfluxDB instead of the embedded store.

    Example: retrofit demo            (then open the printed URL; Ctrl-C stops everything)
    Example: retrofit demo --history-days 7 --run-for 240 --json
    """
    from retrofit.broker import EmbeddedBroker
    from retrofit.cli import console, err, fail

    out = err if as_json else console
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["RETROFIT_DATA_DIR"] = str(data_dir)
    settings = settings_or_exit(data_dir=data_dir)
    (data_dir / "logs").mkdir(exist_ok=True)
    out.print(f"[bold]retrofit demo[/] in {data_dir} (store: "
              f"{'InfluxDB ' + settings.influx_url if settings.influx_url else 'embedded SQLite'})")
    site_path = prepare_site(SAMPLE_SITE, data_dir)
    if site_path != SAMPLE_SITE:
        out.print(f"the sample's ports are busy: serving a copy on free ports from {site_path}")
    created = ensure_records(settings, site_path, out)
    hist = backfill_history(settings, site_path, history_days, out, as_json, baseline)
    out.print(f"history: {hist['readings']:,} readings in the store")

    broker = None if settings.mqtt_url else EmbeddedBroker().start()
    mqtt_url = settings.mqtt_url or broker.url
    env = dict(os.environ, RETROFIT_DATA_DIR=str(data_dir), RETROFIT_MQTT_URL=mqtt_url,
               RETROFIT_SITE=str(site_path), PYTHONUNBUFFERED="1")
    live = LivePhase(out, Children(data_dir / "logs"), env, site_path, data_dir, mqtt_url)
    dash_port = _dashboard_port(settings, port, no_dashboard)
    live_start = time.time()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        live.start(dash_port)
        announce(out, live, broker, dash_port, created)
        live.run(live_start, run_for, LIVE_FAULTS if faults else [], fault_spacing)
        dash_ok = dashboard_health(dash_port) if dash_port else None
    except KeyboardInterrupt:
        out.print("stopping ...")
        _stop(live, broker)
        return
    except RuntimeError as exc:
        _stop(live, broker)
        raise fail(str(exc)) from None
    _stop(live, broker)
    summary = summarise(settings, site_path, live_start, dash_ok)
    if as_json:
        print(json.dumps({**summary, "history_readings": hist["readings"], "run_for_s": run_for}))
    else:
        out.print_json(json.dumps(summary))


def _stop(live: LivePhase, broker: Any) -> None:
    live.children.stop()
    if broker:
        broker.stop()


def register(app: typer.Typer) -> None:
    """Attach `demo` to the retrofit command."""
    app.command("demo")(demo)
