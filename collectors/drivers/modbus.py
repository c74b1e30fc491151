"""Modbus TCP and Modbus RTU (over a TCP gateway or a serial port) with one code path (pymodbus async client).

Every unit id behind one endpoint (a TCP server, an RTU gateway, a serial line) shares one ``ModbusLink``: one
connection, one request at a time, and the device's ``inter_request_pause_s`` after each request, as real RS-485
gateways need. pymodbus' own retries and auto-reconnect are switched off: the poll loop owns retry, backoff and
reconnect, and every request is bounded by our own timeout.

Read-only: ``ModbusDriver.read`` only issues read function codes; writing is ``write_point`` used solely by
the explicit, audited ``retrofit write`` command.

Sample device config (site file; defaults in brackets)::

    devices:
      - id: meter-main
        protocol: modbus           # or modbus-rtu (RTU over a TCP gateway, or serial_port: /dev/ttyUSB0)
        host: 192.168.10.21        # [127.0.0.1]
        port: 502                  # [502]
        unit_id: 1                 # required, 1-247
        poll_interval_s: 60        # [60]
        timeout_s: 2               # [2] per request, our own bound
        max_registers: 125         # [125] largest read the device accepts
        max_gap: 8                 # [8] unused registers one read may bridge
        inter_request_pause_s: 0   # [0] pause after each request (many RS-485 gateways need ~0.05)
    # a point:  modbus: {device: meter-main, function: holding, address: 0, type: float32, word_order: little}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from buildings.site import Device, ModbusFunction, ModbusSource, PointRef, Protocol
from collectors.decode import decode_modbus
from collectors.drivers.base import DeviceProtocolError, DeviceTimeout, DeviceUnreachable, Driver, DriverContext
from collectors.planner import ModbusPlanned, ModbusRead
from telemetry.reading import Quality, Reading

log = logging.getLogger("collectors.modbus")

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
    5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
READ_METHOD = {
    ModbusFunction.HOLDING: "read_holding_registers",
    ModbusFunction.INPUT: "read_input_registers",
    ModbusFunction.COIL: "read_coils",
    ModbusFunction.DISCRETE_INPUT: "read_discrete_inputs",
}


def endpoint_of(device: Device) -> tuple[str, str, int | str]:
    """What devices share a connection by: framing, and host:port or serial port."""
    framing = "rtu" if device.protocol == Protocol.MODBUS_RTU else "tcp"
    if device.serial_port:
        return (framing, "serial", device.serial_port)
    return (framing, device.host, device.port or device.default_port)


def describe_endpoint(device: Device) -> str:
    framing, host, port = endpoint_of(device)
    where = f"serial {port}" if host == "serial" else f"{host}:{port}"
    return f"{where} ({'Modbus RTU' if framing == 'rtu' else 'Modbus TCP'})"


@dataclass
class ModbusLink:
    """One connection to an endpoint, shared by every unit id behind it; requests are serialised."""

    device: Device
    users: int = 0
    client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pause_s: float = 0.0
    rx: bytearray = field(default_factory=bytearray)  # what arrived for the request in flight
    bad_frame: bool = False  # a malformed answer arrived for the request in flight
    inflight: asyncio.Future[object] | None = None

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        d = self.device
        framer = FramerType.RTU if d.protocol == Protocol.MODBUS_RTU else FramerType.SOCKET
        if d.serial_port:
            return AsyncModbusSerialClient(d.serial_port, framer=framer, baudrate=d.baudrate, timeout=d.timeout_s,
                                           retries=0, reconnect_delay=0, trace_packet=self._trace_packet)
        return AsyncModbusTcpClient(d.host, port=d.port or d.default_port, framer=framer, timeout=d.timeout_s,
                                    retries=0, reconnect_delay=0, trace_packet=self._trace_packet)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Watch the wire: keep what arrived, and stop a malformed Modbus TCP answer before pymodbus' framer
        (which raises inside asyncio's data_received and leaves the request to time out)."""
        if sending:
            self.rx.clear()
            self.bad_frame = False
            return data
        self.rx[:] = data  # pymodbus passes its whole receive buffer
        if self.device.protocol == Protocol.MODBUS and malformed_mbap(data):
            self.bad_frame = True
            if self.inflight is not None and not self.inflight.done():
                self.inflight.cancel()  # fail now rather than at the timeout
            return b""
        return data

    async def ensure_open(self, timeout_s: float) -> None:
        if self.client is not None and self.client.connected:
            return
        self.reset()
        self.client = self._make_client()
        try:
            ok = await asyncio.wait_for(self.client.connect(), timeout_s)
        except TimeoutError:
            ok = False
        if not ok:
            self.reset()
            raise DeviceUnreachable(f"cannot connect to {describe_endpoint(self.device)}: check the address, "
                                    f"the port and that the device or gateway is powered and on the network")

    def reset(self) -> None:
        """Drop the connection (after a timeout a late answer must not be taken for the next request's)."""
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a broken transport may raise anything; nothing to do
                pass
        self.client = None

    async def open(self, timeout_s: float) -> None:
        """Connect if needed, under the link's lock: every unit id behind the gateway shares this connection, and
        one unit replacing it while another unit's request is connecting or in flight left that request on a
        client that was never connected (pymodbus then raises ConnectionException before sending)."""
        async with self.lock:
            await self.ensure_open(timeout_s)

    async def call(self, method: str, address: int, count: int, unit: int, timeout_s: float,
                   pause_s: float, label: str) -> object:
        """One request on the shared connection, bounded by our own timeout, then the gateway pause."""
        async with self.lock:
            await self.ensure_open(timeout_s)
            assert self.client is not None
            fn = getattr(self.client, method)
            try:
                # pymodbus raises ConnectionException right here, not in the task, when the client is not connected
                task = asyncio.ensure_future(fn(address, count=count, device_id=unit))
                self.inflight = task
                await asyncio.wait((task,), timeout=timeout_s + 0.5)
                if not task.done() or task.cancelled():
                    task.cancel()
                    raise TimeoutError
                return task.result()
            except (TimeoutError, ModbusIOException) as exc:
                got = bytes(self.rx)
                self.reset()
                if got:  # bytes came back, just not a frame we can decode
                    raise DeviceProtocolError(f"{label}: malformed answer ({len(got)} bytes: {got[:16].hex(' ')}"
                                              f"{' ...' if len(got) > 16 else ''}); the device or gateway sends "
                                              f"garbage: check framing (TCP vs RTU), baud rate and wiring") from None
                raise DeviceTimeout(f"{label}: no answer within {timeout_s:g} s ({type(exc).__name__}); "
                                    f"check the unit id and wiring, or raise timeout_s") from None
            except ConnectionException as exc:
                self.reset()
                raise DeviceUnreachable(f"{label}: connection lost ({exc})") from None
            except ModbusException as exc:  # malformed answer
                self.reset()
                raise DeviceProtocolError(f"{label}: undecodable answer ({exc})") from None
            finally:
                self.inflight = None
                if pause_s > 0:
                    await asyncio.sleep(pause_s)


def malformed_mbap(data: bytes) -> bool:
    """A complete Modbus TCP answer whose lengths disagree (an incomplete one is not judged yet)."""
    if len(data) < 8:
        return False
    length = int.from_bytes(data[4:6], "big")
    if data[2:4] != b"\x00\x00" or length < 2:
        return True
    if len(data) < 6 + length:
        return False  # more bytes on the way
    fc = data[7]
    if fc & 0x80:
        return length != 3
    if fc in (1, 2, 3, 4):
        return len(data) < 9 or length != 3 + data[8]
    return False


class LinkPool:
    """Connections by endpoint: unit ids behind one gateway share its link."""

    def __init__(self) -> None:
        self._links: dict[tuple[str, str, int | str], ModbusLink] = {}

    def acquire(self, device: Device) -> ModbusLink:
        key = endpoint_of(device)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = ModbusLink(device)
        link.users += 1
        return link

    def release(self, link: ModbusLink) -> None:
        link.users -= 1
        if link.users <= 0:
            link.reset()
            self._links = {k: v for k, v in self._links.items() if v is not link}


def make_driver(ctx: DriverContext, device_key: str, device: Device, points: Sequence[PointRef]) -> ModbusDriver:
    """The registry's factory: every Modbus device of a collector shares one pool of endpoint links."""
    return ModbusDriver(device_key, device, ctx.shared("modbus-links", LinkPool))


class ModbusDriver(Driver[ModbusRead]):
    """Reads planned requests from one Modbus unit (TCP, or RTU behind a gateway / on a serial line)."""

    def __init__(self, device_key: str, device: Device, pool: LinkPool | None = None) -> None:
        self.name = device_key
        self.device = device
        self.pool = pool or LinkPool()
        self.link: ModbusLink | None = None

    async def open(self) -> None:
        if self.link is None:
            self.link = self.pool.acquire(self.device)
        await self.link.open(self.device.timeout_s)

    async def close(self) -> None:
        if self.link is not None:
            self.pool.release(self.link)
            self.link = None

    def _label(self, read: ModbusRead) -> str:
        return f"device {self.name} at {describe_endpoint(self.device)}, {read.describe()}"

    async def fetch(self, function: ModbusFunction, start: int, count: int, unit: int, label: str) -> list[int]:
        """Raw registers or bits of one block; raises DeviceProtocolError on a Modbus exception reply."""
        if self.link is None:
            self.link = self.pool.acquire(self.device)
        d = self.device
        resp = await self.link.call(READ_METHOD[function], start, count, unit, d.timeout_s,
                                    d.inter_request_pause_s, label)
        if resp.isError():  # type: ignore[attr-defined]
            code = getattr(resp, "exception_code", None)
            name = EXCEPTION_NAMES.get(code or 0, "unknown")
            raise ModbusExceptionReply(code, f"{label}: Modbus exception {code} ({name})")
        if function in (ModbusFunction.COIL, ModbusFunction.DISCRETE_INPUT):
            return [1 if b else 0 for b in resp.bits[:count]]  # type: ignore[attr-defined]
        return list(resp.registers)  # type: ignore[attr-defined]

    async def read(self, request: ModbusRead) -> list[Reading]:
        label = self._label(request)
        try:
            block = await self.fetch(request.function, request.start, request.count, request.unit, label)
        except ModbusExceptionReply as exc:
            # A coalesced read that bridged an unmapped register gets "illegal data address": read its points
            # one by one so the good ones still arrive and only the unmapped one is flagged.
            if exc.code == 2 and len(request.points) > 1:
                log.warning("%s; reading its %d points one by one", exc, len(request.points))
                return await self._read_each(request.points, request.unit, request.function)
            raise
        ts = time.time()
        if len(block) < request.count:
            log.warning("%s: short answer, %d of %d registers", label, len(block), request.count)
        return decode_modbus(request, block, ts)

    async def _read_each(self, points: Sequence[ModbusPlanned], unit: int,
                         function: ModbusFunction) -> list[Reading]:
        out: list[Reading] = []
        for p in points:
            single = ModbusRead(unit=unit, function=function, start=p.source.address, count=p.source.count,
                                points=(ModbusPlanned(p.key, 0, p.source, p.range),))
            try:
                block = await self.fetch(function, single.start, single.count, unit, self._label(single))
            except ModbusExceptionReply as exc:
                log.warning("%s", exc)
                out.append(Reading(p.key, time.time(), None, Quality.BAD))
                continue
            out.extend(decode_modbus(single, block, time.time()))
        return out


class ModbusExceptionReply(DeviceProtocolError):
    """The device answered a Modbus exception code."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code


async def write_point(device: Device, source: ModbusSource, registers: list[int], timeout_s: float) -> None:
    """Write one point's registers (or coil). Only `retrofit write` calls this, after its checks and audit line."""
    link = ModbusLink(device)
    try:
        await link.ensure_open(timeout_s)
        assert link.client is not None
        unit = device.unit_id or 0
        if source.function == ModbusFunction.COIL:
            resp = await asyncio.wait_for(link.client.write_coil(source.address, bool(registers[0]),
                                                                 device_id=unit), timeout_s + 0.5)
        elif source.function == ModbusFunction.HOLDING:
            if len(registers) == 1:
                resp = await asyncio.wait_for(link.client.write_register(source.address, registers[0],
                                                                         device_id=unit), timeout_s + 0.5)
            else:
                resp = await asyncio.wait_for(link.client.write_registers(source.address, registers,
                                                                          device_id=unit), timeout_s + 0.5)
        else:
            raise DeviceProtocolError(f"{source.function.value} registers are read-only by the Modbus protocol")
        if resp.isError():
            code = getattr(resp, "exception_code", None)
            raise DeviceProtocolError(f"write refused: Modbus exception {code} "
                                      f"({EXCEPTION_NAMES.get(code or 0, 'unknown')})")
    except TimeoutError:
        raise DeviceTimeout(f"no answer to the write within {timeout_s:g} s") from None
    finally:
        link.reset()
