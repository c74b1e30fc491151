"""The whole simulator (Modbus + BACnet + MQTT) and its loopback control endpoint for live faults."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from buildings.simcontrol import ControlError, control_request
from buildings.site import load_site
from retrofit.devservers import ServerProcess
from simulators.serve import Simulator, planned_endpoints
from tests.simulators_servers.conftest import DictValues, write_site

pytestmark = pytest.mark.anyio


def mixed_site(dir_: Path) -> Path:
    devices = [{"id": "meter", "protocol": "modbus", "port": 15020, "unit_id": 3},
               {"id": "ddc", "protocol": "bacnet", "port": 47809, "device_instance": 77},
               {"id": "gw", "protocol": "mqtt", "topic_prefix": "s/b1"}]
    pts: list[dict[str, Any]] = [
        {"id": "kw", "name": "Power", "brick": "Active_Power_Sensor", "unit": "kW",
         "modbus": {"device": "meter", "address": 0, "type": "float32"}},
        {"id": "sat", "name": "SAT", "brick": "Supply_Air_Temperature_Sensor", "unit": "degC",
         "bacnet": {"device": "ddc", "object_type": "analog-input", "instance": 1}},
        {"id": "co2", "name": "CO2", "brick": "CO2_Sensor", "unit": "ppm", "poll_interval_s": 0.5,
         "mqtt": {"device": "gw", "topic": "s/b1/iaq", "value_path": "co2"}},
    ]
    return write_site(dir_, devices, pts)


def raw_request(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(line)
        return s.recv(4096)


async def read_kw(port: int) -> float:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    await c.connect()
    try:
        rr = await c.read_holding_registers(0, count=2, device_id=3)
        assert not rr.isError(), rr
        return float(c.convert_from_registers(rr.registers, c.DATATYPE.FLOAT32))
    finally:
        c.close()


async def test_simulator_serves_all_protocols_and_takes_live_faults(mosquitto: ServerProcess, tmp_path: Path) -> None:
    site = load_site(str(mixed_site(tmp_path))).with_free_ports()
    vals = DictValues({"b1/kw": 42.5, "b1/sat": 13.0, "b1/co2": 700.0})
    ctl = tmp_path / "ctl" / "simulate.json"
    sim = await Simulator(site, vals, mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}", refresh_s=0).start(ctl)
    try:
        eps = {e.protocol: e for e in sim.endpoints()}
        # --list-endpoints (nothing opened) lists exactly what a running simulator serves
        planned = planned_endpoints(site, f"mqtt://127.0.0.1:{mosquitto.port}")
        assert sorted(map(str, planned)) == sorted(map(str, sim.endpoints()))
        assert set(eps) == {"modbus", "bacnet", "mqtt"}
        assert eps["modbus"].unit_id == 3 and eps["bacnet"].device_instance == 77 and eps["mqtt"].topic == "s/b1/iaq"
        assert stat.S_IMODE(os.stat(ctl).st_mode) == 0o600
        port = eps["modbus"].port
        assert await read_kw(port) == 42.5

        ans = await asyncio.to_thread(control_request, ctl, {"op": "inject", "kind": "device_offline",
                                                              "target": "b1/meter"})
        assert ans["ok"] and ans["fault"]["kind"] == "device_offline"
        with pytest.raises(ModbusException):
            await read_kw(port)
        listed = await asyncio.to_thread(control_request, ctl, {"op": "list"})
        assert [f["target"] for f in listed["faults"]] == ["b1/meter"]
        cleared = await asyncio.to_thread(control_request, ctl, {"op": "clear", "id": ans["fault"]["id"]})
        assert cleared["ok"] and len(cleared["cleared"]) == 1
        assert await read_kw(port) == 42.5

        stuck = await asyncio.to_thread(control_request, ctl, {"op": "inject", "kind": "sensor_stuck",
                                                                "target": "b1/kw"})
        assert stuck["ok"]
        vals.values["b1/kw"] = 99.0
        assert await read_kw(port) == 42.5  # stuck at the value it had when the fault started
        await asyncio.to_thread(control_request, ctl, {"op": "clear", "target": "b1/kw"})
        assert await read_kw(port) == 99.0

        bad = await asyncio.to_thread(control_request, ctl, {"op": "inject", "kind": "device_offline",
                                                              "target": "b1/metre"})
        assert not bad["ok"] and "did you mean 'b1/meter'" in bad["error"]
        physics = await asyncio.to_thread(control_request, ctl, {"op": "inject", "kind": "co_garage",
                                                                  "target": "b1"})
        assert not physics["ok"] and "needs the physics" in physics["error"]
        eps_remote = await asyncio.to_thread(control_request, ctl, {"op": "endpoints"})
        assert {e["protocol"] for e in eps_remote["endpoints"]} == {"modbus", "bacnet", "mqtt"}

        # the token is required, and the endpoint listens on loopback only
        data = json.loads(ctl.read_text())
        assert b"bad token" in await asyncio.to_thread(raw_request, data["port"], b'{"op": "list", "token": "x"}\n')
        assert data["host"] == "127.0.0.1"
    finally:
        await sim.stop()
    assert not ctl.exists()
    with pytest.raises(ControlError, match="no running simulator"):
        control_request(ctl, {"op": "list"})


async def test_second_simulator_cannot_take_a_live_control_file(tmp_path: Path) -> None:
    site = load_site(str(mixed_site(tmp_path))).with_free_ports()
    ctl = tmp_path / "simulate.json"
    ctl.write_text(json.dumps({"pid": 1, "host": "127.0.0.1", "port": 1, "token": "x"}))  # pid 1 is alive
    with pytest.raises(ControlError, match="another simulator"):
        await Simulator(site, DictValues()).start(ctl)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not a simulator control file"),
    (json.dumps({"pid": 1, "host": "127.0.0.1"}), "is not a simulator control file"),  # no port, no token
    (json.dumps({"pid": 1, "host": "10.0.0.5", "port": 1, "token": "x"}), "must be on 127.0.0.1"),
])
def test_the_control_client_refuses_a_control_file_it_cannot_use(tmp_path: Path, content: str, message: str) -> None:
    ctl = tmp_path / "simulate.json"
    ctl.write_text(content)
    with pytest.raises(ControlError, match=message):
        control_request(ctl, {"op": "list"})


def test_a_simulator_that_is_gone_is_a_clear_error_for_both_clients(tmp_path: Path) -> None:
    """The command line and the dashboard use the one client: a dead simulator is the same clear message."""
    from dashboard.simctl import SimControl, SimControlError
    from retrofit.devservers import free_port

    ctl = SimControl(tmp_path)
    ctl.dir.mkdir()
    dead = {"pid": 1, "host": "127.0.0.1", "port": free_port(), "token": "x"}  # nobody listens on that port
    ctl.control_file("b1").write_text(json.dumps(dead))
    with pytest.raises(ControlError, match="does not answer"):
        control_request(ctl.control_file("b1"), {"op": "list"})
    with pytest.raises(SimControlError, match="b1: the simulator in .* does not answer"):
        ctl.request("b1", {"op": "list"})
    assert not ctl.status("b1").running and "does not answer" in (ctl.status("b1").error or "")
