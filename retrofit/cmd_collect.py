"""`retrofit collect`, `retrofit discover`, `retrofit write`, `retrofit ingest`: the collectors' commands."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import typer

from buildings import DEFAULT_SITE
from retrofit.settings import settings_or_exit

log = logging.getLogger("retrofit.collect")

discover_app = typer.Typer(help="Find devices and points on a plant network and print a draft site file.  "
                                "Example: retrofit discover bacnet --target 192.168.1.40",
                           no_args_is_help=True)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log every failure ourselves, once, clearly
    logging.getLogger("bacpypes3").setLevel(logging.CRITICAL)


def store_sink(settings: Any, site: Any = None) -> Any:
    """The store sink: the configured store (InfluxDB or embedded) behind the durable buffer. With the site, InfluxDB
    readings also carry the equipment, brick and subitem tags."""
    from collectors.pipeline import StoreSink
    from telemetry import open_store
    from telemetry.buffer import open_buffer

    # owns_store: the buffer closes the store when it is closed
    return StoreSink(open_buffer(settings, open_store(settings, site=site), owns_store=True))


def downsampling_for(store: Any, every_s: float = 3600.0) -> Any:
    """telemetry's DownsampleJob, started, when the store is an InfluxDB without continuous queries (2.x/3.x behind
    the v1 API): nothing else would make the hourly rollups the dashboard and the exports read. None otherwise
    (InfluxDB 1.x rolls up with its own CQ; the embedded store aggregates on query)."""
    from telemetry.influx import DownsampleJob, InfluxStore

    if not isinstance(store, InfluxStore) or store.continuous_queries:
        return None
    job = DownsampleJob(store, every_s=every_s)
    job.start()
    log.info("InfluxDB %s has no continuous queries: rolling up hourly aggregates every %g s ourselves",
             store.server_version, every_s)
    return job


LIVE_LATENESS_S = 15.0  # how long the collector's rules wait for out-of-order readings before evaluating
LIVE_STEP_S = 10.0  # how often (event time) the collector's rules are evaluated


class RulesFeed:
    """The rules engine fed in-process by the pipeline; alarms go to the records DB (and MQTT when configured)."""

    def __init__(self, site: Any, settings: Any, rules_dir: str | None = None) -> None:
        from retrofit.cmd_rules import alarm_book, load_rules_or_exit
        from rules.engine import Engine

        # Live, in-process: the pipeline hands over readings seconds after the collector stamped them, so a short
        # lateness is enough; the engine's replay default (120 s) held a leak alarm back two minutes and more. A
        # reading later than this (an MQTT sensor's queued uplink) still counts: it applies at the next tick.
        # Ticks every 10 s of event time, not the replay's 60 s: a leak or smoke alarm is raised within
        # LIVE_STEP_S + LIVE_LATENESS_S (25 s) of the reading instead of up to 75 s.
        self.engine = Engine(site, load_rules_or_exit(rules_dir), step_s=LIVE_STEP_S, lateness_s=LIVE_LATENESS_S)
        self.book = alarm_book(settings, publish=True)

    def __call__(self, batch: Any) -> None:
        events = self.engine.feed(batch)
        if events:
            self.book.apply(events)

    def close(self) -> None:
        events = self.engine.flush()
        if events:
            self.book.apply(events)
        self.book.close()


def rules_sink(site: Any, settings: Any) -> Any:
    """The hook where the rules engine plugs into the pipeline (collectors never import rules; retrofit wires)."""
    from collectors.pipeline import CallbackSink

    return CallbackSink(RulesFeed(site, settings), name="rules")


def session_client_id(prefix: str, building_ids: Any) -> str:
    """An MQTT session name, stable across restarts and unique per building set: ``<prefix>-<building ids>``
    (a short digest when there are many). Persistent sessions are keyed by it, so a restarted process gets what
    the broker queued for it, and two processes never take each other's session."""
    import hashlib

    ids = "_".join(sorted(building_ids))
    if len(ids) > 64:  # many buildings behind one gateway: a short stable digest instead
        ids = hashlib.sha1(ids.encode()).hexdigest()[:16]
    return f"{prefix}-{ids}"


def publisher_client_id(site: Any) -> str:
    """The MQTT session name of an edge collector's publisher.

    Every collector used to publish as ``retrofit-collector``: two edge collectors on one broker then took the
    same persistent session from each other (the broker disconnects the older one) over and over.
    """
    return session_client_id("retrofit-collect", (b.id for b in site.buildings))


def learned_plan_changes(data_dir: Path | None) -> dict[str, list[dict[str, Any]]]:
    """Reads a running (or the last) collector re-split because its device refused them, from the status file
    in the data dir: `collect --plan` shows them under the planned read."""
    from collectors.pipeline import learned_plan_changes
    from retrofit.settings import settings_or_none

    settings = settings_or_none(data_dir=data_dir) if data_dir else settings_or_none()
    return learned_plan_changes(settings.data_dir) if settings is not None else {}


def collect(
    site_path: str = typer.Option(DEFAULT_SITE, "--site", help="site file or folder"),
    plan: bool = typer.Option(False, "--plan", help="print the read plan (requests per device) and exit"),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url", help="broker of the MQTT sensors and of --publish "
                                        "(default: RETROFIT_MQTT_URL)"),
    publish: bool = typer.Option(False, "--publish", help="also publish every reading to MQTT (QoS 1)"),
    client_id: str | None = typer.Option(None, "--client-id", help="MQTT session name of --publish (default: "
                                         "retrofit-collect-<building ids>, one per edge collector)"),
    rules: bool = typer.Option(True, "--rules/--no-rules", help="evaluate the fault rules live on every reading"),
    bacnet_local: str | None = typer.Option(None, "--bacnet-local", help="our BACnet address, e.g. "
                                            "192.168.1.20/24 (default: a free port on 127.0.0.1/8)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="where the store, buffer and status live"),
    duration: float = typer.Option(0, "--duration", help="stop after N seconds (0: until SIGINT/SIGTERM)"),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run the collectors of a site until stopped: poll Modbus/BACnet, receive MQTT sensors, store readings.

    Read-only: nothing here writes to a device. Status (health and counters per device) is written to
    DATA_DIR/collector-status.json every 5 s. SIGINT/SIGTERM stop it cleanly, flushing every reading held.

    Example: retrofit collect --site buildings/sites/yuzhong --plan
    """
    from collectors.collector import Collector
    from collectors.planner import format_plan, plan_site
    from retrofit.cli import load_site_or_exit

    site = load_site_or_exit(site_path)
    if plan:
        print(format_plan(plan_site(site), learned_plan_changes(data_dir)))
        return
    _logging(log_level)
    settings = settings_or_exit(data_dir=data_dir, mqtt_url=mqtt_url)
    store = store_sink(settings, site)  # owns the store it opens: closed with the buffer when the collector stops
    rollups = downsampling_for(store.target.store)
    sinks = [store, *optional_sinks(site, settings, rules=rules, publish=publish, client_id=client_id)]
    pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    collector = Collector(site, sinks, mqtt_url=settings.mqtt_url, mqtt_username=settings.mqtt_username,
                          mqtt_password=pw, bacnet_local=bacnet_local, data_dir=settings.data_dir)
    run_until_stopped(collector, rollups, duration)


def optional_sinks(site: Any, settings: Any, *, rules: bool, publish: bool, client_id: str | None) -> list[Any]:
    """The live rules engine (unless --no-rules; a broken library is logged, collection goes on) and the MQTT
    publisher (--publish, which needs a broker)."""
    sinks: list[Any] = []
    if rules:
        try:
            sinks.append(rules_sink(site, settings))
        except Exception as exc:  # noqa: BLE001 - a broken rule library must not stop data collection
            log.error("rules engine not started (%s: %s); collecting without live rules, fix the library and "
                      "restart (`retrofit rules check`)", type(exc).__name__, exc)
    if publish:
        if not settings.mqtt_url:
            from retrofit.cli import fail

            raise fail("--publish needs a broker: pass --mqtt-url or set RETROFIT_MQTT_URL")
        from collectors.mqtt_publish import MqttPublisher

        pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        sinks.append(MqttPublisher(settings.mqtt_url, root=settings.mqtt_topic_root,
                                   client_id=client_id or publisher_client_id(site),
                                   username=settings.mqtt_username, password=pw))
    return sinks


def run_until_stopped(collector: Any, rollups: Any, duration: float) -> None:
    """Run the collector until SIGINT/SIGTERM or ``duration`` seconds (0: forever); the rollup job stops first,
    before the store closes with the buffer."""

    async def main() -> None:
        stop = asyncio.Event()

        def halt() -> None:
            stop.set()
            if rollups is not None:
                rollups.stop()  # before the store closes with the buffer

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, halt)
        if duration > 0:
            loop.call_later(duration, halt)
        await collector.run(stop)

    try:
        asyncio.run(main())
    finally:
        if rollups is not None:
            rollups.stop()
            rollups.join(timeout=10)
    print(json.dumps(collector.summary()))


def write(
    site_path: str = typer.Option(..., "--site", help="site file or folder"),
    point: str = typer.Option(..., "--point", help="point key building_id/point_id"),
    value: str = typer.Option(..., "--value", help="new value in engineering units"),
    reason: str = typer.Option("", "--reason", help="why (kept in the audit line)"),
    priority: int = typer.Option(8, "--priority", min=1, max=16, help="BACnet write priority"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="where the audit log lives"),
) -> None:
    """Write one value to one writable point, audited (who, what, when, old value) in DATA_DIR/audit/writes.log.

    Refuses every point not declared `writable: true` in the site file. The only code path that writes.

    Example: retrofit write --site buildings/sites/yuzhong --point jiefangbei-tower/ahu-1-sat-sp --value 13.5
    """
    from collectors.drivers.base import DeviceError
    from collectors.write import WriteRefused, write_point
    from retrofit.cli import fail, load_site_or_exit

    site = load_site_or_exit(site_path)
    settings = settings_or_exit(data_dir=data_dir)
    _logging("WARNING")
    try:
        entry = asyncio.run(write_point(site, point, value, settings.data_dir, reason=reason, priority=priority))
    except WriteRefused as exc:
        raise fail(f"refused: {exc}", code=2) from None
    except DeviceError as exc:
        raise fail(f"write failed: {exc}") from None
    print(json.dumps(entry, ensure_ascii=False, default=str))


def ingest(
    source: str = typer.Option(..., "--from", help="broker URL, e.g. mqtt://127.0.0.1:1883"),
    buildings: str = typer.Option("", "--buildings", help="comma-separated building ids (default: all)"),
    client_id: str = typer.Option("retrofit-ingest", "--client-id", help="persistent session name"),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    duration: float = typer.Option(0, "--duration", help="stop after N seconds (0: until SIGINT/SIGTERM)"),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Store readings that edge collectors publish on MQTT (QoS 1, persistent session) through the buffer.

    Example: retrofit ingest --from mqtt://127.0.0.1:1883 --buildings jiefangbei-tower
    """
    from collectors.ingest import Ingest

    _logging(log_level)
    settings = settings_or_exit(data_dir=data_dir)
    sink = store_sink(settings)
    pw = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    worker = Ingest(source, sink.write, root=settings.mqtt_topic_root, client_id=client_id,
                    username=settings.mqtt_username, password=pw,
                    buildings=[b for b in buildings.split(",") if b] or None)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = threading.Timer(duration, stop.set) if duration > 0 else None
    if timer is not None:
        timer.start()
    try:
        worker.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sink.close()
    print(json.dumps(worker.stats()))


@discover_app.command("bacnet")
def discover_bacnet_cmd(
    target: list[str] = typer.Option(..., "--target", help="HOST[:PORT] of a device (repeatable)"),
    low: int | None = typer.Option(None, "--low", help="lowest device instance to ask for"),
    high: int | None = typer.Option(None, "--high", help="highest device instance to ask for"),
    building: str = typer.Option("new-building", "--building", help="building id for the draft"),
    bacnet_local: str | None = typer.Option(None, "--bacnet-local", help="our BACnet address"),
    timeout: float = typer.Option(3.0, "--timeout"),
) -> None:
    """Directed Who-Is, then object-list, object-name, units and present-value: prints a draft site YAML.

    Example: retrofit discover bacnet --target 127.0.0.1:47810 > draft.yaml
    """
    from collectors.discover import bacnet_draft, discover_bacnet, to_yaml
    from retrofit.cli import fail

    _logging("WARNING")
    found = asyncio.run(discover_bacnet(target, bacnet_local, low, high, timeout))
    if not found:
        raise fail(f"no BACnet device answered at {', '.join(target)}")
    objects = sum(len(d.objects) for d in found)
    print(to_yaml(bacnet_draft(found, building), f"draft from `retrofit discover bacnet`: {len(found)} devices, "
                  f"{objects} objects.\nEdit names, equipment, Brick classes; then `retrofit site check`."))


@discover_app.command("modbus")
def discover_modbus_cmd(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(502, "--port"),
    unit: int = typer.Option(1, "--unit"),
    span: str = typer.Option("0-99", "--range", help="register range A-B (0-based, inclusive)"),
    function: str = typer.Option("holding", "--function", help="holding | input | coil | discrete_input"),
    rtu: bool = typer.Option(False, "--rtu", help="RTU framing (an RTU-over-TCP gateway)"),
    building: str = typer.Option("new-building", "--building"),
    timeout: float = typer.Option(2.0, "--timeout"),
) -> None:
    """Scan a register range of one unit (reads only) and print a draft site YAML of what answered.

    Example: retrofit discover modbus --host 127.0.0.1 --port 15020 --unit 1 --range 0-63
    """
    from collectors.discover import modbus_draft, scan_modbus, to_yaml
    from collectors.drivers.base import DeviceError
    from retrofit.cli import fail

    try:
        a, b = (int(x) for x in span.split("-"))
        assert 0 <= a <= b <= 65535
    except (ValueError, AssertionError):
        raise fail(f"--range {span!r}: use A-B with 0 <= A <= B <= 65535") from None
    if function not in ("holding", "input", "coil", "discrete_input"):
        raise fail(f"--function {function!r}: use holding, input, coil or discrete_input")
    _logging("WARNING")
    try:
        found = asyncio.run(scan_modbus(host, port, unit, a, b, function, timeout, rtu))
    except DeviceError as exc:
        raise fail(str(exc)) from None
    if not found:
        raise fail(f"nothing answered in {function} {a}-{b} of unit {unit} at {host}:{port}")
    print(to_yaml(modbus_draft(found, host, port, unit, function, building, rtu),
                  f"draft from `retrofit discover modbus`: {len(found)} {function} registers answered.\n"
                  f"Each is read as uint16; set type, scale, names and Brick classes, then `retrofit site check`."))


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
    app.command("write")(write)
    app.command("ingest")(ingest)
    app.add_typer(discover_app, name="discover")
