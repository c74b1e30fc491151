"""The commands: collect against `retrofit simulate` of the sample district, write (refused / audited),
discovery drafts that `retrofit site check` accepts, and proof that collecting never writes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from buildings.site import Site, load_site
from collectors.collector import Collector
from collectors.discover import bacnet_draft, discover_bacnet, modbus_draft, scan_modbus, to_yaml
from collectors.pipeline import MemorySink, read_status
from collectors.write import write_point
from retrofit.cli import app
from retrofit.devservers import ServerProcess, free_port, free_udp_port
from simulators.servers.bacnet import start_bacnet
from simulators.servers.modbus import ModbusEndpointServer, start_modbus
from telemetry.reading import Quality
from tests.collectors.conftest import DictValues, building_doc, point, write_site
from tests.simsupport import start_simulate

ROOT = Path(__file__).resolve().parents[2]
RETROFIT = [sys.executable, "-m", "retrofit.cli"]




@pytest.mark.parametrize("store", ["embedded", "influxdb"])
def test_collect_sample_district_against_simulate(tmp_path: Path, sample_site_path: Path, store: str,
                                                  mosquitto: ServerProcess, request: pytest.FixtureRequest) -> None:
    influxd = request.getfixturevalue("influxd") if store == "influxdb" else None
    sample = load_site(str(sample_site_path))
    mqtt = f"mqtt://127.0.0.1:{mosquitto.port}"
    env = {**os.environ, "RETROFIT_DATA_DIR": str(tmp_path / "data"), "RETROFIT_MQTT_URL": mqtt,
           "RETROFIT_CONFIG": str(tmp_path / "none.toml")}
    env.pop("RETROFIT_INFLUX_URL", None)
    if influxd is not None:
        env.update(RETROFIT_INFLUX_URL=f"http://127.0.0.1:{influxd.port}", RETROFIT_INFLUX_DATABASE="collectors_e2e")
    (tmp_path / "none.toml").write_text("")
    # The simulator binds its own free ports (no window for another process to take them) and prints them;
    # the collector gets the same site moved to those ports.
    sim = start_simulate(sample_site_path, site=sample, env={**env, "RETROFIT_DATA_DIR": str(tmp_path / "sim")},
                         log=tmp_path / "simulate.log", timeout=60, extra_args=["--speed", "60", "--mqtt-url", mqtt])
    site = sim.site
    try:
        site_dir = Path(site.write_yaml(tmp_path / "site"))
        out = subprocess.run([*RETROFIT, "collect", "--site", str(site_dir), "--duration", "6"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr[-3000:]
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert summary["devices"] == 44 and summary["errors"] == 0, (summary, out.stderr[-3000:])
    finally:
        sim.stop(20)
    from retrofit.settings import Settings
    from telemetry import open_store

    settings = Settings(data_dir=tmp_path / "data", influx_url=env.get("RETROFIT_INFLUX_URL"),
                        influx_database=env.get("RETROFIT_INFLUX_DATABASE", "retrofit"))
    db = open_store(settings, readonly=True)
    try:
        stored = db.series()
        latest = db.latest(stored)
    finally:
        db.close()
    by_protocol: dict[str, int] = {"modbus": 0, "bacnet": 0, "mqtt": 0}
    for key in stored:
        if latest[key].quality is Quality.GOOD:
            by_protocol[site.points[key].point.protocol_family] += 1
    assert by_protocol["modbus"] >= 200 and by_protocol["bacnet"] >= 100 and by_protocol["mqtt"] >= 10, by_protocol
    status = read_status(tmp_path / "data")
    assert status is not None and len(status["devices"]) == 44
    assert all(d["health"] == "ok" for d in status["devices"].values()), status["devices"]


def _writable_site(tmp_path: Path) -> Site:
    devices = [{"id": "m1", "protocol": "modbus", "port": free_port(), "unit_id": 1, "poll_interval_s": 0.2}]
    pts = [point("sp", {"device": "m1", "address": 0, "type": "int16", "scale": 0.1}, "modbus",
                 brick="Zone_Air_Temperature_Setpoint", writable=True),
           point("temp", {"device": "m1", "address": 1, "type": "int16", "scale": 0.1}, "modbus")]
    return write_site(tmp_path / "s", [building_doc("b1", devices, pts)])


def test_collect_never_writes(tmp_path: Path) -> None:
    site = _writable_site(tmp_path)
    codes: list[int] = []
    original = ModbusEndpointServer._trace_pdu

    def spy(self: ModbusEndpointServer, sending: bool, pdu: object):
        if not sending:
            codes.append(pdu.function_code)  # type: ignore[attr-defined]
        return original(self, sending, pdu)  # type: ignore[arg-type]

    async def main() -> None:
        ModbusEndpointServer._trace_pdu = spy  # type: ignore[method-assign]
        try:
            servers = await start_modbus(site, DictValues({"b1/sp": 21.0, "b1/temp": 22.0}), refresh_s=0)
            stop = asyncio.Event()
            task = asyncio.create_task(Collector(site, [MemorySink()]).run(stop))
            await asyncio.sleep(1.0)
            stop.set()
            await task
            for s in servers:
                await s.stop()
        finally:
            ModbusEndpointServer._trace_pdu = original  # type: ignore[method-assign]

    asyncio.run(main())
    assert len(codes) >= 3 and set(codes) <= {1, 2, 3, 4}, codes
    # and no collector module but the audited write path contains a write call at all
    for path in (ROOT / "collectors").rglob("*.py"):
        if path.name in ("write.py",) or path.name == "modbus.py":
            continue
        assert not re.search(r"write_(register|coil|property)", path.read_text()), path


def test_write_refuses_non_writable_and_audits_a_real_write(tmp_path: Path) -> None:
    site = _writable_site(tmp_path)
    data = tmp_path / "data"
    runner = CliRunner()
    env = {"RETROFIT_CONFIG": str(tmp_path / "none.toml"), "RETROFIT_DATA_DIR": str(data)}
    (tmp_path / "none.toml").write_text("")
    refused = runner.invoke(app, ["write", "--site", str(tmp_path / "s"), "--point", "b1/temp", "--value", "5"],
                            env=env)
    assert refused.exit_code == 2 and "not writable" in refused.output
    values = DictValues({"b1/sp": 21.0, "b1/temp": 22.0})

    async def main() -> dict:
        servers = await start_modbus(site, values, refresh_s=0)
        try:
            return await write_point(site, "b1/sp", "23.5", data, reason="test")
        finally:
            for s in servers:
                await s.stop()

    entry = asyncio.run(main())
    assert entry["old_value"] == 21.0 and entry["read_back"] == 23.5 and entry["result"] == "written"
    lines = [json.loads(x) for x in (data / "audit" / "writes.log").read_text().splitlines()]
    assert [x["result"] for x in lines] == ["refused", "written"]
    assert lines[0]["point"] == "b1/temp" and lines[1]["who"] and lines[1]["old_value"] == 21.0


def test_discovery_drafts_pass_site_check(tmp_path: Path) -> None:
    mport, bport = free_port(), free_udp_port()
    devices = [{"id": "m1", "protocol": "modbus", "port": mport, "unit_id": 3},
               {"id": "c1", "protocol": "bacnet", "port": bport, "device_instance": 4101}]
    pts = [point(f"r{i}", {"device": "m1", "address": 10 + i, "type": "uint16"}, "modbus", brick="Point", unit="")
           for i in range(5)]
    pts += [point(f"ai{i}", {"device": "c1", "object_type": "analog-input", "instance": i}, "bacnet")
            for i in range(4)]
    pts.append(point("fan", {"device": "c1", "object_type": "binary-value", "instance": 1}, "bacnet",
                     brick="Fan_Status", unit="bool"))
    site = write_site(tmp_path / "s", [building_doc("b1", devices, pts)])
    values = DictValues({f"b1/r{i}": float(100 + i) for i in range(5)}, default=21.0)

    async def main() -> tuple[dict[int, int], list]:
        servers = [*await start_modbus(site, values, refresh_s=0), *await start_bacnet(site, values)]
        try:
            found = await scan_modbus("127.0.0.1", mport, 3, 0, 40)
            devs = await discover_bacnet([f"127.0.0.1:{bport}"], timeout_s=2.0)
        finally:
            for s in servers:
                await s.stop()
        return found, devs

    found, devs = asyncio.run(main())
    assert {a: found[a] for a in range(10, 15)} == {10 + i: 100 + i for i in range(5)}
    assert len(devs) == 1 and devs[0].instance == 4101 and len(devs[0].objects) == 5
    for name, doc in (("modbus", modbus_draft(found, "127.0.0.1", mport, 3)), ("bacnet", bacnet_draft(devs))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "draft.yaml").write_text(to_yaml(doc, "draft"))
        check = CliRunner().invoke(app, ["site", "check", str(tmp_path / name)])
        assert check.exit_code == 0, check.output


def test_discover_modbus_command_prints_a_draft(tmp_path: Path) -> None:
    import threading

    port = free_port()
    devices = [{"id": "m1", "protocol": "modbus", "port": port, "unit_id": 2}]
    pts = [point(f"r{i}", {"device": "m1", "address": 20 + i, "type": "uint16"}, "modbus", brick="Point", unit="")
           for i in range(3)]
    site = write_site(tmp_path / "s", [building_doc("b1", devices, pts)])
    values = DictValues({f"b1/r{i}": float(7 + i) for i in range(3)})
    loop = asyncio.new_event_loop()
    started = threading.Event()
    servers: list = []

    def serve() -> None:  # the simulator on its own loop: the command runs asyncio.run() on this thread's side
        asyncio.set_event_loop(loop)
        servers.extend(loop.run_until_complete(start_modbus(site, values, refresh_s=0)))
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(10)
    try:
        out = CliRunner().invoke(app, ["discover", "modbus", "--port", str(port), "--unit", "2", "--range", "0-40"])
    finally:
        for s in servers:
            asyncio.run_coroutine_threadsafe(s.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    assert out.exit_code == 0, out.output
    (tmp_path / "draft").mkdir()
    (tmp_path / "draft" / "draft.yaml").write_text(out.stdout)
    draft = load_site(str(tmp_path / "draft"))
    assert [(r.point.modbus.address, r.point.name) for r in draft.points.values()] == [  # type: ignore[union-attr]
        (20, "TODO name (raw 7)"), (21, "TODO name (raw 8)"), (22, "TODO name (raw 9)")]
