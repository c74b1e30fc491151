"""The Modbus TCP simulator over real sockets, read by a plain pymodbus client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from buildings.site import Site, load_site
from simulators.servers.modbus import ModbusEndpointServer, start_modbus
from simulators.values import DeviceMode
from tests.simulators_servers.conftest import DictValues, write_site

pytestmark = pytest.mark.anyio
DT = AsyncModbusTcpClient.DATATYPE
ORDERS = list(itertools.product(("big", "little"), ("big", "little")))
SAMPLES = {"int16": -1234, "uint16": 54321, "int32": -2_000_000_000, "uint32": 4_000_000_000,
           "float32": 21.5, "float64": -12345.678901234}


def typed_points() -> tuple[list[dict[str, Any]], dict[str, float | str]]:
    """A point for every data type x byte order x word order on holding registers, plus strings and bits."""
    points, want, addr = [], {}, 0
    for (t, v), (bo, wo) in itertools.product(SAMPLES.items(), ORDERS):
        pid = f"{t}-{bo}-{wo}"
        points.append({"id": pid, "name": pid, "brick": "Active_Power_Sensor", "unit": "kW",
                       "modbus": {"device": "m1", "address": addr, "type": t, "byte_order": bo, "word_order": wo}})
        want[f"b1/{pid}"] = v
        addr += {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}[t]
    for bo in ("big", "little"):
        pid = f"model-{bo}"
        points.append({"id": pid, "name": pid, "brick": "Active_Power_Sensor", "unit": "kW",
                       "modbus": {"device": "m1", "address": addr, "type": "string", "length": 5, "byte_order": bo}})
        want[f"b1/{pid}"] = "PM5560"
        addr += 5
    for b in (0, 5, 15):
        pid = f"status-bit{b}"
        points.append({"id": pid, "name": pid, "brick": "Active_Power_Sensor", "unit": "kW",
                       "modbus": {"device": "m1", "address": addr, "type": "bit", "bit": b}})
        want[f"b1/{pid}"] = 1.0 if b != 5 else 0.0
    addr += 1
    points.append({"id": "scaled", "name": "scaled", "brick": "Voltage_Sensor", "unit": "V", "writable": True,
                   "modbus": {"device": "m1", "address": addr, "type": "int16", "scale": 0.1, "offset": -40}})
    want["b1/scaled"] = 231.4
    for fn, a in (("coil", 0), ("coil", 1), ("discrete_input", 7)):
        pid = f"{fn}-{a}"
        points.append({"id": pid, "name": pid, "brick": "Active_Power_Sensor", "unit": "kW", "writable": fn == "coil",
                       "modbus": {"device": "m1", "address": a, "function": fn, "type": "bit"}})
        want[f"b1/{pid}"] = 1.0 if a != 1 else 0.0
    points.append({"id": "in-float", "name": "in", "brick": "Active_Power_Sensor", "unit": "kW",
                   "modbus": {"device": "m2", "address": 300, "function": "input", "type": "float32"}})
    want["b1/in-float"] = 3.25
    return points, want


@pytest.fixture()
def typed_site(tmp_path: Path) -> tuple[Site, DictValues]:
    points, want = typed_points()
    devices = [{"id": "m1", "protocol": "modbus", "port": 15020, "unit_id": 1},
               {"id": "m2", "protocol": "modbus", "port": 15020, "unit_id": 7}]
    return load_site(str(write_site(tmp_path, devices, points))).with_free_ports(), DictValues(want)


@pytest.fixture()
async def served(typed_site: tuple[Site, DictValues]) -> AsyncIterator[tuple[Site, DictValues, int]]:
    site, vals = typed_site
    servers = await start_modbus(site, vals, refresh_s=0)
    yield site, vals, servers[0].port
    for s in servers:
        await s.stop()


async def client(port: int, timeout: float = 1.0) -> AsyncModbusTcpClient:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    assert await c.connect()
    return c


def sync_read_raw(port: int, unit: int) -> object:
    """One holding-register read with the plain sync client; returns the response or the exception raised."""
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    try:
        assert c.connect()
        return c.read_holding_registers(0, count=1, device_id=unit)
    except ModbusException as exc:
        return exc
    finally:
        c.close()


def swap(regs: list[int]) -> list[int]:
    return [((r & 0xFF) << 8) | (r >> 8) for r in regs]


async def test_every_type_and_order_decodes_independently(served: tuple[Site, DictValues, int]) -> None:
    """Decode with pymodbus' own converter (plus a byte swap), not with our codec, so both ends are checked."""
    site, vals, port = served
    c = await client(port)
    try:
        for key, ref in site.points.items():
            src, want = ref.point.modbus, vals.values[key]
            assert src is not None
            if src.function.value in ("coil", "discrete_input"):
                rr = await (c.read_coils if src.function.value == "coil" else c.read_discrete_inputs)(
                    src.address, count=1, device_id=ref.device.unit_id)
                assert not rr.isError(), key
                assert rr.bits[0] == bool(want), key
                continue
            read = c.read_input_registers if src.function.value == "input" else c.read_holding_registers
            rr = await read(src.address, count=src.count, device_id=ref.device.unit_id)
            assert not rr.isError(), (key, rr)
            regs = swap(rr.registers) if src.byte_order == "little" else rr.registers
            if src.type.value == "string":
                assert c.convert_from_registers(regs, DT.STRING) == want, key
            elif src.type.value == "bit":
                assert bool(regs[0] >> src.bit & 1) == bool(want), key
            else:
                raw = c.convert_from_registers(regs, getattr(DT, src.type.value.upper()), word_order=src.word_order)
                got = raw * src.scale + src.offset
                tol = 1e-6 * abs(want) if src.type.value.startswith("float") else src.scale / 2 + 1e-9
                assert abs(got - want) <= tol, (key, got, want)
    finally:
        c.close()


async def test_block_read_through_small_gap_and_live_values(served: tuple[Site, DictValues, int]) -> None:
    site, vals, port = served
    c = await client(port)
    try:
        rr = await c.read_holding_registers(0, count=60, device_id=1)  # many points in one request
        assert not rr.isError()
        assert rr.registers[0] == (-1234) & 0xFFFF
        vals.values["b1/int16-big-big"] = 77
        rr = await c.read_holding_registers(0, count=1, device_id=1)
        assert rr.registers == [77]
        # coil 0 and 1 are adjacent; discrete 7 alone: reading 0..1 works, 2 is unmapped
        assert (await c.read_coils(0, count=2, device_id=1)).bits[:2] == [True, False]
        assert (await c.read_coils(0, count=3, device_id=1)).exception_code == 2
    finally:
        c.close()


async def test_exception_replies(served: tuple[Site, DictValues, int]) -> None:
    site, vals, port = served
    c = await client(port)
    try:
        last = max(r.point.modbus.address + r.point.modbus.count for r in site.points.values()
                   if r.point.modbus.function.value == "holding")
        rr = await c.read_holding_registers(last + 50, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 2  # unmapped address
        rr = await c.read_holding_registers(0, count=2, device_id=99)
        assert rr.isError() and rr.exception_code == 0x0B  # unknown unit id: gateway target failed
        for name, args in (("read_holding_registers", (40000, 125)), ("read_coils", (5000, 100)),
                           ("read_discrete_inputs", (7, 3)), ("read_input_registers", (65000, 10)),
                           ("write_registers", (100, [1, 2, 3])), ("write_coils", (9, [True] * 20)),
                           ("write_coil", (9, True)), ("write_register", (5, 7))):
            call = getattr(c, name)
            rr = await (call(args[0], count=args[1], device_id=99) if name.startswith("read")
                        else call(args[0], args[1], device_id=99))
            assert rr.isError() and rr.exception_code == 0x0B, (name, rr)
        rr = await c.read_input_registers(0, count=1, device_id=7)
        assert rr.isError() and rr.exception_code == 2
        rr = await c.read_input_registers(300, count=2, device_id=7)
        assert c.convert_from_registers(rr.registers, DT.FLOAT32) == 3.25
    finally:
        c.close()


async def test_writes_only_to_writable_points(served: tuple[Site, DictValues, int]) -> None:
    site, vals, port = served
    scaled = site.points["b1/scaled"].point.modbus
    c = await client(port)
    try:
        assert not (await c.write_register(scaled.address, 2500, device_id=1)).isError()  # 2500*0.1-40 = 210
        rr = await c.read_holding_registers(scaled.address, count=1, device_id=1)
        assert rr.registers == [2500]
        assert (await c.write_register(0, 5, device_id=1)).exception_code == 2  # int16 point is read-only
        assert not (await c.write_coil(1, True, device_id=1)).isError()
        assert (await c.read_coils(1, count=1, device_id=1)).bits[0] is True
    finally:
        c.close()


async def test_device_modes(served: tuple[Site, DictValues, int]) -> None:
    site, vals, port = served
    c = await client(port, timeout=0.5)
    try:
        vals.modes["b1/m1"] = DeviceMode.ERRORS
        rr = await c.read_holding_registers(0, count=1, device_id=1)
        assert rr.isError() and rr.exception_code == 4
        assert not (await c.read_input_registers(300, count=2, device_id=7)).isError()  # the other unit is fine

        vals.modes["b1/m1"] = DeviceMode.OFFLINE
        t0 = time.monotonic()
        with pytest.raises(ModbusException):
            await c.read_holding_registers(0, count=1, device_id=1)
        assert time.monotonic() - t0 >= 0.4  # no answer at all: the client had to time out

        vals.modes["b1/m1"] = DeviceMode.GARBAGE
        # a malformed frame: the client cannot decode a value from it. (The async client raises that inside the
        # event loop's data_received and times out the call; the sync client raises it from the call itself.)
        got = await asyncio.to_thread(sync_read_raw, port, 1)
        assert isinstance(got, ModbusException), got

        vals.modes.clear()
        c.close()
        c = await client(port)
        assert (await c.read_holding_registers(0, count=1, device_id=1)).registers == [(-1234) & 0xFFFF]
    finally:
        c.close()


async def test_refresh_interval_caches_values(typed_site: tuple[Site, DictValues]) -> None:
    """Between refreshes a read does no per-point work; values change at the next refresh."""
    site, vals = typed_site
    servers = await start_modbus(site, vals, refresh_s=0.3)
    c = await client(servers[0].port)
    try:
        await c.read_holding_registers(0, count=1, device_id=1)
        calls = vals.calls
        vals.values["b1/int16-big-big"] = 5
        for _ in range(5):
            assert (await c.read_holding_registers(0, count=1, device_id=1)).registers == [(-1234) & 0xFFFF]
        assert vals.calls == calls
        await asyncio.sleep(0.35)
        assert (await c.read_holding_registers(0, count=1, device_id=1)).registers == [5]
    finally:
        c.close()
        for s in servers:
            await s.stop()


async def test_port_in_use_is_a_clear_error(typed_site: tuple[Site, DictValues]) -> None:
    site, vals = typed_site
    servers = await start_modbus(site, vals)
    try:
        dup = ModbusEndpointServer("127.0.0.1", servers[0].port, [], vals)
        with pytest.raises(OSError, match="cannot listen"):
            await dup.start()
    finally:
        for s in servers:
            await s.stop()


async def test_rtu_over_tcp_gateway(tmp_path: Path) -> None:
    """A modbus-rtu device behind a TCP gateway port is served with RTU framing (unit id + CRC, no MBAP)."""
    from pymodbus import FramerType

    devices = [{"id": "rtu1", "protocol": "modbus-rtu", "port": 15021, "unit_id": 5}]
    points = [{"id": "kwh", "name": "kWh", "brick": "Active_Power_Sensor", "unit": "kW",
               "modbus": {"device": "rtu1", "address": 10, "type": "uint32"}}]
    site = load_site(str(write_site(tmp_path, devices, points))).with_free_ports()
    vals = DictValues({"b1/kwh": 123456})
    servers = await start_modbus(site, vals, refresh_s=0)
    c = AsyncModbusTcpClient("127.0.0.1", port=servers[0].port, framer=FramerType.RTU, timeout=1, retries=0)
    try:
        assert await c.connect()
        rr = await c.read_holding_registers(10, count=2, device_id=5)
        assert c.convert_from_registers(rr.registers, DT.UINT32) == 123456
    finally:
        c.close()
        for s in servers:
            await s.stop()
