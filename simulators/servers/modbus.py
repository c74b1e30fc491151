"""Modbus TCP simulator: one pymodbus server per (host, port), every unit id behind it, points as declared.

Built on pymodbus' supported simulator API (``SimData`` / ``SimDevice(action=...)``), not the deprecated
datastore. How it maps the site model onto it:

- Each unit gets the four separate tables (coils, discrete inputs, holding, input registers): ``SimDevice`` with
  a 4-tuple of SimData lists, so coil N is bit N, exactly like the site's 0-based addresses.
- Every point's registers are a ``SimData(REGISTERS)`` block; unmapped gaps up to the device's ``max_gap`` are
  readable zeros (the planner is allowed to read through them), wider gaps are invalid and answer exception 2
  (illegal data address). For coils/discrete inputs pymodbus validates whole 16-bit groups, so the action
  checks single bits itself.
- **Live values, cheaply**: pymodbus hands the action the table's own register list; the action re-encodes
  the table's points from the ValueSource into it *in place*, at most once per ``refresh_s`` per table (a real
  meter updates its registers about once a second too). A read costs nothing proportional to the device's
  points between refreshes. ``refresh_s=0`` refreshes on every request (tests).
- **Unknown unit id**: a catch-all ``SimDevice(id=0)`` answers exception 0x0B (gateway target failed to
  respond), what a Modbus TCP gateway answers for a unit that is not there.
- **Device modes** (``ValueSource.device_mode``): *offline* drops the request in the ``trace_pdu`` hook (no
  reply: the client times out, like a dead meter behind a gateway); *errors* makes the action answer
  exception 4 (server device failure); *garbage* rewrites the outgoing frame in the ``trace_packet`` hook into
  a malformed one (the byte count disagrees with the data, and the payload is truncated).
- Writes (FC 5/6/15/16) are accepted only on points declared ``writable`` (others answer exception 2); the
  written value is decoded and held as an override of the ValueSource value, as a plant would hold a setpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from buildings.modbus_codec import BlockEncoder, PointCodec, codec_for
from buildings.site import Device, ModbusFunction, ModbusSource, Point, Protocol, Site, point_key
from simulators.servers import Endpoint
from simulators.values import DeviceMode, ValueSource

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every exception reply as an error

# function code -> table, as pymodbus' SimRuntime maps them
_FC_TABLE = {1: "c", 5: "c", 15: "c", 2: "d", 3: "h", 6: "h", 16: "h", 22: "h", 23: "h", 4: "i"}
_TABLE_OF = {ModbusFunction.COIL: "c", ModbusFunction.DISCRETE_INPUT: "d", ModbusFunction.HOLDING: "h",
             ModbusFunction.INPUT: "i"}


@dataclass(slots=True)
class _Slot:
    """One point inside a table: where its registers (or its bit) start, and how to encode it."""

    key: str
    address: int
    codec: PointCodec
    writable: bool
    src: ModbusSource


@dataclass
class _Table:
    """One of a unit's four tables; ``registers`` is pymodbus' own list once the server is built."""

    name: str
    slots: list[_Slot] = field(default_factory=list)
    valid_bits: set[int] = field(default_factory=set)  # bit tables: mapped (or gap-filled) bit addresses
    last_refresh: float = -1e18
    keys: list[str] = field(default_factory=list)  # point keys in slot order (the refresh's value list)
    encoder: BlockEncoder | None = None  # register tables: batched encoding, built on the first refresh
    base: int = 0  # the address of pymodbus' registers[0] the encoder was built for

    @property
    def outside(self) -> int:
        """A bit address outside this table's pymodbus block (requests moved there answer exception 2)."""
        return 65535 if not self.valid_bits or max(self.valid_bits) < 65520 else 0

    @property
    def is_bits(self) -> bool:
        return self.name in ("c", "d")


@dataclass
class _Unit:
    key: str  # "building/device"
    device: Device
    tables: dict[str, _Table]
    overrides: dict[str, float | str] = field(default_factory=dict)


class ModbusEndpointServer:
    """One listening socket (host, port) with every simulated unit behind it."""

    def __init__(self, host: str, port: int, units: list[tuple[str, Device, list[tuple[str, Point]]]],
                 values: ValueSource, refresh_s: float = 1.0, framer: FramerType = FramerType.SOCKET) -> None:
        """units: (device key, Device, [(point key, Point)]) for every unit id on this endpoint."""
        self.host, self.port, self.values, self.refresh_s, self.framer = host, port, values, refresh_s, framer
        self.units: dict[int, _Unit] = {}
        for key, dev, points in units:
            self.units[dev.unit_id or 0] = _Unit(key, dev, _build_tables(dev, points))
        self.server: ModbusTcpServer | None = None

    # --- pymodbus wiring -----------------------------------------------------------------------------

    def sim_devices(self) -> list[SimDevice]:
        out = [SimDevice(id=uid, simdata=_simdata(u), use_bit_addressing=True, action=partial(self._action, u))
               for uid, u in self.units.items()]
        if 0 not in self.units:
            out.append(SimDevice(id=0, simdata=_catch_all_simdata(), action=_no_such_unit))
        return out

    async def start(self) -> ModbusEndpointServer:
        self.server = ModbusTcpServer(self.sim_devices(), address=(self.host, self.port), framer=self.framer,
                                      trace_pdu=self._trace_pdu, trace_packet=self._trace_packet)
        try:
            await self.server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self.host}:{self.port} for Modbus ({exc}); is the port in use or the "
                          "host not an address of this machine? Use --free-ports or a loopback host") from None
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("modbus", self.host, self.port, u.key.partition("/")[0], u.key.partition("/")[2],
                         unit_id=uid, points=sum(len(t.slots) for t in u.tables.values()))
                for uid, u in sorted(self.units.items())]

    def _mode(self, unit_id: int) -> DeviceMode:
        u = self.units.get(unit_id)
        return DeviceMode.OK if u is None else self.values.device_mode(u.key)

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """Incoming request hook: an offline unit never sees the request, so nothing is answered.

        It also checks coil / discrete-input requests bit by bit: pymodbus validates bit tables per 16-bit group
        and hands the action a register count, so an unmapped bit is caught here and the request is moved to an
        address outside the table, which pymodbus answers with exception 2.
        """
        if sending:
            return pdu
        unit = self.units.get(pdu.dev_id)
        if unit is None:
            if 0 not in self.units:
                _to_catch_all(pdu)
            return pdu
        if self.values.device_mode(unit.key) == DeviceMode.OFFLINE:
            return None
        if pdu.function_code in (1, 2, 5, 15):
            table = unit.tables[_FC_TABLE[pdu.function_code]]
            n = len(pdu.bits) if pdu.function_code == 15 else (1 if pdu.function_code == 5 else pdu.count)
            if any(a not in table.valid_bits for a in range(pdu.address, pdu.address + max(n, 1))):
                pdu.address = table.outside
        return pdu

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """Outgoing frame hook: a unit in garbage mode sends a malformed frame instead of its answer."""
        if not sending or len(packet) < 8:
            return packet
        uid = packet[6] if self.framer == FramerType.SOCKET else packet[0]
        if self._mode(uid) != DeviceMode.GARBAGE:
            return packet
        return _garble(packet, self.framer)

    async def _action(self, unit: _Unit, func_code: int, start: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """Called by pymodbus for every request to this unit, with the table's live register list."""
        mode = self.values.device_mode(unit.key)
        if mode == DeviceMode.ERRORS:
            return ExcCodes.DEVICE_FAILURE
        table = unit.tables[_FC_TABLE[func_code]]
        if set_values is not None:
            if table.is_bits:  # pymodbus passes the count of 16-bit groups here; the bits are what is written
                count = len(set_values)
            err = self._write(unit, table, start, address, count, registers, set_values)
            if err is not None:
                return err
        now = time.monotonic()
        if now - table.last_refresh >= self.refresh_s:
            self._refresh(unit, table, start, registers)
            table.last_refresh = now
        return None

    def _refresh(self, unit: _Unit, table: _Table, start: int, registers: list[int]) -> None:
        """Re-encode every point of the table from the ValueSource into pymodbus' register list."""
        value, overrides = self.values.value, unit.overrides
        if table.is_bits:
            for s in table.slots:
                v = overrides[s.key] if s.key in overrides else value(s.key)
                on = s.codec.encode(v)[0]
                i, mask = s.address // 16 - start, 1 << (s.address % 16)
                registers[i] = (registers[i] | mask) if on else (registers[i] & ~mask)
            return
        if table.encoder is None or table.base != start:
            table.encoder = BlockEncoder([(s.address - start, s.src) for s in table.slots])
            table.base = start
        if overrides:
            vals = [overrides[s.key] if s.key in overrides else value(s.key) for s in table.slots]
        else:
            vals = [value(k) for k in table.keys]
        table.encoder.write(registers, vals)

    def _write(self, unit: _Unit, table: _Table, start: int, address: int, count: int, registers: list[int],
               set_values: list[int] | list[bool]) -> ExcCodes | None:
        """Accept a write only onto writable points; keep the decoded value as the point's new value."""
        end = address + count
        touched = [s for s in table.slots if s.address < end and address < s.address + s.codec.count]
        if not touched or any(not s.writable for s in touched):
            return ExcCodes.ILLEGAL_ADDRESS
        for s in touched:
            if table.is_bits:
                unit.overrides[s.key] = 1.0 if set_values[s.address - address] else 0.0
                continue
            regs = registers[s.address - start:s.address - start + s.codec.count]
            for i in range(s.codec.count):
                j = s.address + i - address
                if 0 <= j < count:
                    regs[i] = int(set_values[j])
            unit.overrides[s.key] = s.codec.decode(regs)
        return None


async def _no_such_unit(*_args: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _garble(packet: bytes, framer: FramerType) -> bytes:
    """A malformed reply: header kept (so it reaches the right request), PDU byte count lies, data cut short."""
    if framer == FramerType.SOCKET:
        head, pdu = bytearray(packet[:7]), bytearray(packet[7:])
    else:
        head, pdu = bytearray(packet[:1]), bytearray(packet[1:-2])
    fc = pdu[0] if pdu else 3
    body = bytearray([fc & 0x7F, 0xFF, 0xDE, 0xAD])  # claims 255 bytes, carries 2
    if framer == FramerType.SOCKET:
        head[4:6] = (len(body) + 1).to_bytes(2, "big")
        return bytes(head + body)
    return bytes(head + body + b"\x00\x00")  # and a wrong CRC


def _build_tables(dev: Device, points: Iterable[tuple[str, Point]]) -> dict[str, _Table]:
    tables = {n: _Table(n) for n in ("c", "d", "h", "i")}
    for key, p in points:
        src = p.modbus
        if src is None:
            raise ValueError(f"point {key} has no modbus source; only Modbus points can be served over Modbus")
        tables[_TABLE_OF[src.function]].slots.append(_Slot(key, src.address, codec_for(src), p.writable, src))
    for t in tables.values():
        t.slots.sort(key=lambda s: s.address)
        t.keys = [s.key for s in t.slots]
        if t.is_bits:
            bits = sorted({s.address for s in t.slots})
            t.valid_bits = set(bits)
            for a, b in zip(bits, bits[1:], strict=False):
                if b - a - 1 <= dev.max_gap:
                    t.valid_bits.update(range(a + 1, b))
    return tables


def _simdata(unit: _Unit) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """The four SimData lists (coils, discrete inputs, holding, input) of a unit."""
    out: list[list[SimData]] = []
    for name in ("c", "d", "h", "i"):
        t = unit.tables[name]
        out.append(_bit_simdata(t) if t.is_bits else _register_simdata(t, unit.device.max_gap))
    return out[0], out[1], out[2], out[3]


def _bit_simdata(t: _Table) -> list[SimData]:
    if not t.valid_bits:
        return [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]  # the action refuses all
    runs: list[list[int]] = []
    for a in sorted(t.valid_bits):
        if runs and a == runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([a, a + 1])
    return [SimData(address=a, values=[False] * (b - a), datatype=DataType.BITS) for a, b in runs]


def _register_simdata(t: _Table, max_gap: int) -> list[SimData]:
    if not t.slots:
        return [SimData(address=0, count=1, datatype=DataType.INVALID)]
    spans: list[list[int]] = []  # [start, end, writable]
    for s in t.slots:
        a, b = s.address, s.address + s.codec.count
        if spans and a < spans[-1][1]:  # bits sharing a register
            spans[-1][1] = max(spans[-1][1], b)
            spans[-1][2] = spans[-1][2] and s.writable
        else:
            spans.append([a, b, s.writable])
    out: list[SimData] = []
    prev_end: int | None = None
    for a, b, writable in spans:
        if prev_end is not None and 0 < a - prev_end <= max_gap:
            out.append(SimData(address=prev_end, count=a - prev_end, values=0, datatype=DataType.REGISTERS,
                               readonly=True))
        out.append(SimData(address=a, values=[0] * (b - a), datatype=DataType.REGISTERS, readonly=not writable))
        prev_end = b
    return out


def _catch_all_simdata() -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
    """One valid address per table: ``_to_catch_all`` points every request for an unknown unit there."""
    bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
    regs = [SimData(address=0, count=1, values=0, datatype=DataType.REGISTERS)]
    return bits, list(bits), regs, list(regs)


def _to_catch_all(pdu: ModbusPDU) -> None:
    """Aim a request for an unknown unit at address 0, count 1, so the catch-all action answers 0x0B.

    pymodbus checks addresses before it calls the action, and an exception reply carries no address, so this
    only changes which check answers; a catch-all block covering all 65,536 addresses costs ~0.4 s per server.
    """
    for attr in ("address", "read_address", "write_address"):
        if hasattr(pdu, attr):
            setattr(pdu, attr, 0)
    for attr in ("count", "read_count", "write_count"):
        if getattr(pdu, attr, 0):
            setattr(pdu, attr, 1)
    if len(getattr(pdu, "registers", ()) or ()) > 1:
        pdu.registers = pdu.registers[:1]
    if len(getattr(pdu, "bits", ()) or ()) > 1:
        pdu.bits = pdu.bits[:1]
    if getattr(pdu, "byte_count", None) is not None:  # the length checks would now fail with exception 3
        pdu.byte_count = None


def modbus_groups(site: Site) -> dict[tuple[str, int], list[tuple[str, Device, list[tuple[str, Point]]]]]:
    """Modbus TCP (and RTU-over-TCP) devices grouped by the (host, port) they listen on."""
    groups: dict[tuple[str, int], list[tuple[str, Device, list[tuple[str, Point]]]]] = {}
    for bf in site.files:
        for dev in bf.devices:
            if dev.protocol not in (Protocol.MODBUS, Protocol.MODBUS_RTU) or dev.serial_port:
                continue
            pts = [(point_key(bf.building.id, p.id), p) for _eq, p in bf.points() if p.modbus
                   and p.modbus.device == dev.id]
            groups.setdefault((dev.host, dev.port or dev.default_port), []).append(
                (point_key(bf.building.id, dev.id), dev, pts))
    return groups


async def start_modbus(site: Site, values: ValueSource, refresh_s: float = 1.0) -> list[ModbusEndpointServer]:
    """Start one server per Modbus endpoint of the site; stop the ones started if any fails."""
    started: list[ModbusEndpointServer] = []
    try:
        for (host, port), units in modbus_groups(site).items():
            rtu = {u[1].protocol for u in units} == {Protocol.MODBUS_RTU}
            srv = ModbusEndpointServer(host, port, units, values, refresh_s,
                                       FramerType.RTU if rtu else FramerType.SOCKET)
            started.append(await srv.start())
    except BaseException:
        await asyncio.gather(*(s.stop() for s in started), return_exceptions=True)
        raise
    return started
