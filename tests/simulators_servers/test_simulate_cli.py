"""`retrofit simulate` on the sample district, checked with tools written by others: mbpoll, a plain bacpypes3
client, mosquitto_sub; live faults through `retrofit simulate fault`; clean shutdown on SIGTERM.

The simulator runs with a fixed start time and a tiny --speed, so its clock stands still and the value the
physics produced can be recomputed here (simulators.site_sim.SiteSimulation, same seed and time) and compared.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildings.simcontrol import control_request
from buildings.site import Site, load_site
from retrofit.devservers import ServerProcess, free_udp_port
from tests.simsupport import start_simulate

ROOT = Path(__file__).resolve().parents[2]
T0 = "2026-07-15T15:00"  # a hot weekday afternoon: plant running, values far from defaults
CLI = [sys.executable, "-m", "retrofit.cli"]


@pytest.fixture(scope="module")
def site(sample_site_path: Path) -> Site:
    return load_site(str(sample_site_path))


@pytest.fixture(scope="module")
def physics(site: Site) -> dict[str, Any]:
    """The physics' values at T0, computed independently of the running simulator."""
    from retrofit.cmd_simulate import parse_when
    from simulators.site_sim import SiteSimulation

    t0 = parse_when(T0, site.buildings[0].timezone)
    return SiteSimulation(site, seed=0, speed=1e-6, start=t0).snapshot(t0)


@pytest.fixture(scope="module")
def simulator(sample_site_path: Path, site: Site, mosquitto: ServerProcess,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("simulate")
    # subscribe first: each sensor publishes once at start, then every 120 s
    sub_out = open(work / "sub.txt", "wb")  # noqa: SIM115 - closed below
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t", "yuzhong/#",
                            "-v", "-W", "120"], stdout=sub_out, stderr=subprocess.STDOUT)
    time.sleep(0.3)
    ctl = work / "ctl.json"
    try:
        sim = start_simulate(sample_site_path, site=site, log=work / "simulate.log", timeout=90,
                             extra_args=["--start", T0, "--speed", "1e-6", "--refresh", "0.2", "--mqtt-url",
                                         f"mqtt://127.0.0.1:{mosquitto.port}", "--control-file", str(ctl)])
        try:
            # with --json, stdout is nothing but JSON lines: one per endpoint, then the ready line
            assert [json.loads(x) for x in sim.lines] == [*sim.endpoints, sim.ready], sim.lines
            yield {"proc": sim.proc, "endpoints": sim.endpoints, "ctl": ctl, "sub": sub, "sub_file": work / "sub.txt"}
        finally:
            sim.stop(10)
    finally:
        sub.terminate()
        sub.wait(10)
        sub_out.close()


def endpoint(sim: dict[str, Any], device: str) -> dict[str, Any]:
    return next(e for e in sim["endpoints"] if e["device"] == device)


def mbpoll(port: int, unit: int, address: int, kind: str, big_words: bool = False) -> str:
    """One mbpoll read (0-based reference); returns its value text, or its error."""
    args = ["mbpoll", "-m", "tcp", "-a", str(unit), "-r", str(address), "-0", "-c", "1", "-t", kind, "-1",
            "-o", "1", "-p", str(port)] + (["-B"] if big_words else []) + ["127.0.0.1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    for line in out.stdout.splitlines():
        if line.startswith(f"[{address}]:"):
            return line.split(":", 1)[1].strip()
    return "ERROR " + (out.stderr.strip() or out.stdout.strip()[-200:])


def mbpoll_words(port: int, unit: int, address: int, table: str, count: int) -> list[int]:
    """Raw register words (hex display) or bits through mbpoll, in address order."""
    kind = {"holding": "4:hex", "input": "3:hex", "coil": "0", "discrete_input": "1"}[table]
    args = ["mbpoll", "-m", "tcp", "-a", str(unit), "-r", str(address), "-0", "-c", str(count), "-t", kind, "-1",
            "-o", "2", "-p", str(port), "127.0.0.1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    got = {}
    for line in out.stdout.splitlines():
        if line.startswith("[") and "]:" in line:
            ref, _, value = line.partition(":")
            got[int(ref.strip("[]"))] = int(value.strip(), 16 if kind.endswith("hex") else 10)
    assert len(got) == count, out.stdout + out.stderr
    return [got[a] for a in range(address, address + count)]


def outside_decode(words: list[int], type_: str, byte_order: str, word_order: str, bit: int | None) -> float:
    """A register value decoded here with struct, not with buildings.modbus_codec."""
    import struct

    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if type_ == "bit":
        return float((words[0] >> bit) & 1) if bit is not None else float(words[0])
    if word_order == "little":
        words = words[::-1]
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f", "float64": ">d"}[type_]
    return float(struct.unpack(fmt, raw)[0])


def test_mbpoll_reads_every_kind_of_point_in_the_sample_site(simulator: dict[str, Any], site: Site,
                                                             physics: dict[str, Any]) -> None:
    """One point of every (function, type, byte order, word order, scaled) the sample district declares, read
    by mbpoll as raw words and decoded here; float32 also through mbpoll's own float decoding (-B for ABCD)."""
    kinds: dict[tuple[Any, ...], Any] = {}
    for ref in site.points.values():
        m = ref.point.modbus
        if m is not None and ref.key in physics:
            kinds.setdefault((m.function.value, m.type.value, m.byte_order, m.word_order, m.scale != 1), ref)
    assert len(kinds) >= 12, sorted(kinds)
    for ref in kinds.values():
        m = ref.point.modbus
        ep = next(e for e in simulator["endpoints"]
                  if e["device"] == ref.device.id and e["building"] == ref.building.id)
        words = mbpoll_words(ep["port"], ref.device.unit_id or 1, m.address, m.function.value, m.count)
        got = outside_decode(words, m.type.value, m.byte_order, m.word_order, m.bit) * m.scale + m.offset
        want = float(physics[ref.key])
        tol = max(abs(m.scale) / 2 + 1e-9, abs(want) * 1e-6) if m.type.value != "float64" else abs(want) * 1e-12
        assert abs(got - want) <= tol, (ref.key, m.type.value, m.word_order, got, want)
        if m.type.value == "float32" and m.byte_order == "big":
            kind = ("4" if m.function.value == "holding" else "3") + ":float"
            text = mbpoll(ep["port"], ref.device.unit_id or 1, m.address, kind, big_words=m.word_order == "big")
            assert float(text) == pytest.approx(want, rel=1e-5), (ref.key, text)


def test_endpoints_cover_the_site(simulator: dict[str, Any], site: Site) -> None:
    eps = simulator["endpoints"]
    assert {e["protocol"] for e in eps} == {"modbus", "bacnet", "mqtt"}
    modbus_units = {(e["building"], e["device"]) for e in eps if e["protocol"] == "modbus"}
    bacnet = {e["device_instance"] for e in eps if e["protocol"] == "bacnet"}
    for key, (b, d) in site.devices.items():
        if d.protocol.value == "modbus":
            assert (b.id, d.id) in modbus_units, key
        if d.protocol.value == "bacnet":
            assert d.device_instance in bacnet, key
    assert all(e["port"] not in (15027, 47810) for e in eps if e["protocol"] != "mqtt")  # --free-ports moved them


def test_mbpoll_reads_the_physics_value(simulator: dict[str, Any], site: Site, physics: dict[str, Any]) -> None:
    ref = site.points["chaotianmen-harbour/em-main-ua"]  # float32, word order little (mbpoll's default)
    src = ref.point.modbus
    assert src is not None and src.type.value == "float32" and src.word_order == "little"
    ep = endpoint(simulator, "meter-main")
    got = float(mbpoll(ep["port"], ref.device.unit_id or 1, src.address, "4:float"))
    assert got == pytest.approx(physics[ref.key], rel=1e-5)

    ref = site.points["chaotianmen-harbour/ahul-sat"]  # int16 with scale 0.1
    src = ref.point.modbus
    assert src is not None and src.type.value == "int16" and src.scale == 0.1
    ep = endpoint(simulator, "ddc")
    raw = int(mbpoll(ep["port"], ref.device.unit_id or 1, src.address, "4"))
    assert raw * src.scale + src.offset == pytest.approx(physics[ref.key], abs=0.051)


def test_bacpypes3_client_reads_present_value_with_rpm(simulator: dict[str, Any], site: Site,
                                                       physics: dict[str, Any]) -> None:
    from bacpypes3.app import Application
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.local.networkport import NetworkPortObject
    from bacpypes3.pdu import Address

    keys = ["jiefangbei-tower/ahu1-sat", "jiefangbei-tower/ahu1-mat"]
    ep = endpoint(simulator, "ahu-1-ctl")

    async def read() -> list[Any]:
        app = Application.from_object_list([
            DeviceObject(objectIdentifier=("device", 4000003), objectName="rpm-client"),
            NetworkPortObject(f"127.0.0.1/8:{free_udp_port()}", objectIdentifier=("network-port", 1),
                              objectName="NetworkPort-1")])
        try:
            spec: list[Any] = []
            for k in keys:
                b = site.points[k].point.bacnet
                assert b is not None
                spec += [f"{b.object_type},{b.instance}", ["present-value", "object-name"]]
            return await asyncio.wait_for(app.read_property_multiple(Address(f"127.0.0.1:{ep['port']}"), spec), 10)
        finally:
            app.close()

    res = asyncio.run(read())
    pv = [v for _o, p, _i, v in res if str(p) == "present-value"]
    names = [v for _o, p, _i, v in res if str(p) == "object-name"]
    assert names == ["ahu1-sat", "ahu1-mat"]
    for k, v in zip(keys, pv, strict=True):
        assert v == pytest.approx(physics[k], rel=1e-6, abs=1e-5)  # float32 on the wire


def test_mosquitto_sub_sees_wireless_sensor_json(simulator: dict[str, Any], site: Site,
                                                 physics: dict[str, Any]) -> None:
    topics = {e["topic"] for e in simulator["endpoints"] if e["protocol"] == "mqtt"}
    deadline = time.monotonic() + 20
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and set(seen) != topics:
        time.sleep(0.3)
        for line in simulator["sub_file"].read_text(errors="replace").splitlines():
            topic, _, payload = line.partition(" ")
            seen[topic] = json.loads(payload)
    assert set(seen) == topics
    ref = next(r for r in site.points.values() if r.point.mqtt and r.point.brick == "CO2_Sensor")
    doc = seen[ref.point.mqtt.topic]
    assert doc[ref.point.mqtt.value_path] == pytest.approx(physics[ref.key], abs=0.001)
    assert "battery" in json.dumps(doc) and "rssi" in json.dumps(doc)
    # every wireless point the physics computes, at its dotted value path, as mosquitto_sub received it
    checked = 0
    for r in site.points.values():
        mq = r.point.mqtt
        if mq is None or r.key not in physics or not isinstance(physics[r.key], int | float):
            continue
        node: Any = seen[mq.topic]
        for part in mq.value_path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        assert node == pytest.approx(physics[r.key], abs=0.001), (r.key, node, physics[r.key])
        checked += 1
    assert checked >= 20, checked


def test_fault_inject_and_clear_from_the_command_line(simulator: dict[str, Any], site: Site) -> None:
    ctl = str(simulator["ctl"])
    ep = endpoint(simulator, "meter-main")
    address = site.points["chaotianmen-harbour/em-main-ua"].point.modbus.address
    run = lambda *a: subprocess.run([*CLI, "simulate", "fault", *a, "--control-file", ctl], cwd=ROOT,  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    out = run("inject", "--kind", "device_offline", "--target", "chaotianmen-harbour/meter-main")
    assert out.returncode == 0 and "injected" in out.stdout, out.stderr
    assert mbpoll(ep["port"], 1, address, "4:float").startswith("ERROR")
    # the same control endpoint the commands use, without paying a CLI start-up per check
    listed = control_request(simulator["ctl"], {"op": "list"})
    assert [f["target"] for f in listed["faults"]] == ["chaotianmen-harbour/meter-main"]
    bad = control_request(simulator["ctl"], {"op": "inject", "kind": "device_offline",
                                             "target": "chaotianmen-harbour/no-such-meter"})
    assert not bad["ok"] and "not in the site" in bad["error"]
    # a fault parameter is checked before anything runs: percent is percent, 400 % is refused (the unit is said)
    unbalance = run("inject", "--kind", "voltage_unbalance", "--target", "chaotianmen-harbour/meter-main",
                    "--param", "drop=400")
    assert unbalance.returncode != 0, unbalance.stdout
    assert "params.drop: voltage_unbalance parameter drop: 400 % is out of range; allowed 0.5 to 30 %" in \
        " ".join(unbalance.stderr.split()), unbalance.stderr
    physics_fault = control_request(simulator["ctl"], {"op": "inject", "kind": "co_garage",
                                                       "target": "chaotianmen-harbour/garage-b1"})
    assert physics_fault["ok"] and physics_fault["fault"]["kind"] == "co_garage"  # handed to the physics
    cleared = run("clear", "--all")
    assert cleared.returncode == 0 and "meter-main" in cleared.stdout and "garage-b1" in cleared.stdout, cleared
    assert float(mbpoll(ep["port"], 1, address, "4:float")) > 100


def test_sigterm_stops_cleanly(simulator: dict[str, Any]) -> None:
    """Last in the module: the simulator exits 0 on SIGTERM, releases its ports and removes its control file."""
    proc: subprocess.Popen = simulator["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not simulator["ctl"].exists()
    ep = endpoint(simulator, "meter-main")
    assert mbpoll(ep["port"], 1, 0, "4").startswith("ERROR")
    assert os.path.exists(simulator["sub_file"])
