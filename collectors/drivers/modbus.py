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
from collectors.planner import ModbusRead, halves
from telemetry.reading import Quality, Reading

log = logging.getLogger("collectors.modbus")

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
    5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
# "illegal data address" (a bridged gap holds an unmapped register) and "illegal data value" (more registers than
# the device serves in one read): a coalesced read refused with these is re-split, not retried as it is.
RESPLIT_CODES = (2, 3)
# "acknowledge" / "server device busy": asked again after a short pause, a bounded number of times in one poll.
BUSY_CODES = (5, 6)
BUSY_RETRIES = 2
BUSY_PAUSE_S = 0.1
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
    tx: bytes = b""  # the request in flight, as sent
    mismatch: str | None = None  # a well-formed answer that does not answer our request (why)

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
            self.tx = bytes(data)
            self.bad_frame = False
            self.mismatch = None
            return data
        self.rx[:] = data  # pymodbus passes its whole receive buffer
        if self.device.protocol != Protocol.MODBUS:
            return data
        self.mismatch = None if malformed_mbap(data) else answer_mismatch(self.tx, data)
        if self.mismatch is not None or malformed_mbap(data):
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
                got, mismatch = bytes(self.rx), self.mismatch
                self.reset()
                if mismatch is not None:
                    raise DeviceProtocolError(f"{label}: {mismatch}") from None
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


def answer_mismatch(sent: bytes, got: bytes) -> str | None:
    """Why a complete, well-formed Modbus TCP answer does not answer the read we sent (None when it does):
    another transaction id, another function code, or fewer (or more) data bytes than registers asked for.
    pymodbus would drop the first (and wait out the timeout) and hand back the other two as data."""
    if len(sent) < 12 or len(got) < 9:
        return None
    if got[0:2] != sent[0:2]:
        return (f"answered transaction id {got[0:2].hex()} to our {sent[0:2].hex()}: a gateway mixing up "
                f"requests, or another master on this connection")
    fc, want_fc = got[7] & 0x7F, sent[7]
    if fc != want_fc:
        return (f"answered function code {fc} to a read with function code {want_fc}: the device or gateway "
                f"mixes up requests; its data is not used")
    if got[7] & 0x80 or want_fc not in (1, 2, 3, 4):
        return None
    count = int.from_bytes(sent[10:12], "big")
    want_bytes = 2 * count if want_fc in (3, 4) else (count + 7) // 8
    if got[8] != want_bytes:
        what = "registers" if want_fc in (3, 4) else "bits"
        return (f"answered {got[8]} data bytes for {count} {what} (expected {want_bytes}): a short or padded "
                f"frame; check the register map and max_registers")
    return None


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
        # A coalesced read the device refused (exception 2 or 3) -> the reads it answers, for the rest of the run
        self.learned: dict[tuple[int, str, int, int], list[ModbusRead]] = {}
        self.refused: set[str] = set()  # points the device refuses even on their own
        self.plan_changes: list[dict[str, object]] = []  # what was re-planned, for the status file

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
        for attempt in range(BUSY_RETRIES + 1):
            resp = await self.link.call(READ_METHOD[function], start, count, unit, d.timeout_s,
                                        d.inter_request_pause_s, label)
            if not resp.isError():  # type: ignore[attr-defined]
                break
            code = getattr(resp, "exception_code", None)
            if code in BUSY_CODES and attempt < BUSY_RETRIES:  # the device asks to be asked again, shortly
                await asyncio.sleep(min(BUSY_PAUSE_S * 2 ** attempt, d.timeout_s))
                continue
            name = EXCEPTION_NAMES.get(code or 0, "unknown")
            tries = f" (still after {attempt + 1} tries)" if code in BUSY_CODES else ""
            raise ModbusExceptionReply(code, f"{label}: Modbus exception {code} ({name}){tries}")
        if function in (ModbusFunction.COIL, ModbusFunction.DISCRETE_INPUT):
            return [1 if b else 0 for b in resp.bits[:count]]  # type: ignore[attr-defined]
        return list(resp.registers)  # type: ignore[attr-defined]

    async def read(self, request: ModbusRead) -> list[Reading]:
        """One planned read, or the reads it was re-split into after the device refused it (remembered)."""
        learned = self.learned.get(read_key(request))
        if learned is not None:
            return await self._read_learned(request, learned)
        try:
            return await self._read_block(request)
        except ModbusExceptionReply as exc:
            if exc.code not in RESPLIT_CODES or len(request.points) < 2:
                raise
            subs, readings = await self._split(request)
            self._remember(request, request, subs, subs, exc)
            return readings

    async def _read_block(self, read: ModbusRead) -> list[Reading]:
        label = self._label(read)
        block = await self.fetch(read.function, read.start, read.count, read.unit, label)
        if len(block) < read.count:
            log.warning("%s: short answer, %d of %d registers", label, len(block), read.count)
        return decode_modbus(read, block, time.time())

    async def _split(self, read: ModbusRead) -> tuple[list[ModbusRead], list[Reading]]:
        """Bisect a refused read until every part is answered; a single point the device still refuses stays
        a read of its own (it reads BAD each poll, so a fixed device or address shows at once)."""
        try:
            return [read], await self._read_block(read)
        except ModbusExceptionReply as exc:
            if exc.code not in RESPLIT_CODES or len(read.points) < 2:
                if len(read.points) == 1:
                    self.refused.add(read.points[0].key)
                    return [read], [Reading(read.points[0].key, time.time(), None, Quality.BAD)]
                raise
        left, right = halves(read)
        a_reads, a_out = await self._split(left)
        b_reads, b_out = await self._split(right)
        return a_reads + b_reads, a_out + b_out

    async def _read_learned(self, planned: ModbusRead, subs: list[ModbusRead]) -> list[Reading]:
        out: list[Reading] = []
        now_subs: list[ModbusRead] = []
        resplit: list[tuple[ModbusRead, list[ModbusRead], ModbusExceptionReply]] = []
        for sub in subs:
            try:
                out.extend(await self._read_block(sub))
            except ModbusExceptionReply as exc:
                if exc.code not in RESPLIT_CODES:
                    raise
                if len(sub.points) == 1:  # known to be refused: flagged every poll, logged once when learned
                    now_subs.append(sub)
                    out.append(Reading(sub.points[0].key, time.time(), None, Quality.BAD))
                    continue
                parts, readings = await self._split(sub)  # the device changed: split this part further
                now_subs.extend(parts)
                out.extend(readings)
                resplit.append((sub, parts, exc))
                continue
            now_subs.append(sub)
            if len(sub.points) == 1 and sub.points[0].key in self.refused:
                self.refused.discard(sub.points[0].key)
                log.info("device %s: %s answers again", self.name, sub.points[0].key)
        self.learned[read_key(planned)] = now_subs
        for sub, parts, exc in resplit:
            self._remember(planned, sub, parts, now_subs, exc)
        return out

    def _remember(self, planned: ModbusRead, part: ModbusRead, parts: list[ModbusRead], all_reads: list[ModbusRead],
                  exc: ModbusExceptionReply) -> None:
        """Keep the re-split plan for the rest of the run, log it once, and record it for the status file, from
        which the next run starts (one entry per planned read, replaced when a part of it is split again)."""
        self.learned[read_key(planned)] = all_reads
        reason = f"exception {exc.code} ({EXCEPTION_NAMES.get(exc.code or 0, 'unknown')})"
        refused = [s.points[0].key for s in parts if len(s.points) == 1 and s.points[0].key in self.refused]
        log.warning("device %s: %s answered %s; re-planned as %d reads (%s), kept in the status file for the "
                    "next runs; set max_registers / max_gap in the site file to plan it so from the start%s",
                    self.name, part.describe(), reason, len(parts),
                    ", ".join(f"{s.start}-{s.start + s.count - 1}" for s in parts),
                    "".join(f"; {k} is refused on its own: check its address" for k in refused))
        entry = {"read": planned.describe(), "reason": reason, "now": [s.describe() for s in all_reads],
                 "parts": [[s.start, s.count] for s in all_reads], "ts": time.time()}
        self.plan_changes[:] = [c for c in self.plan_changes if c["read"] != entry["read"]] + [entry]


def read_key(read: ModbusRead) -> tuple[int, str, int, int]:
    """What identifies a planned read across polls (the plan's reads are rebuilt only with the plan)."""
    return (read.unit, read.function.value, read.start, read.count)


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
