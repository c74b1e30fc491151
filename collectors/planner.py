"""The read planner: turns a device's points into the fewest protocol requests, once, before polling starts.

Modbus points are coalesced per (unit id, function code) into contiguous reads of at most the device's
``max_registers`` (<= 125, the protocol maximum), reading through gaps of up to ``max_gap`` unused registers;
a read never mixes function codes or unit ids. BACnet points are grouped into ReadPropertyMultiple requests
sized to the device's ``max_points`` and, when it cannot segment, to what fits in its max APDU; a device that
does not support RPM gets one ReadProperty per point. Points with their own ``poll_interval_s`` get their own
schedule group, so a slow point never drags its neighbours' reads along.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from buildings.modbus_codec import PointCodec, codec_for
from buildings.site import BacnetSource, Device, ModbusFunction, ModbusSource, PointRef, Protocol, Site

MAX_BITS = 2000  # protocol maximum for read coils / discrete inputs
READ_LIMIT_REGISTERS = 125  # protocol maximum for read holding / input registers
# Rough BACnet encoded sizes. A device that cannot segment must fit its whole RPM answer in one APDU (the smaller
# of its max APDU and our 1476 bytes), and our request must fit the device's max APDU.
RPM_HEADER_BYTES = 8
RPM_REQUEST_BYTES = 10  # per property: object identifier + property id + opening/closing tags
RPM_ANSWER_BYTES = 24  # per property: object identifier, tags, property id, a REAL (or an error pair)
OUR_MAX_APDU = 1476


@dataclass(frozen=True, slots=True)
class ModbusPlanned:
    """A point inside a Modbus read: where its registers start relative to the read, and its compiled codec
    (looked up once here, not per reading: the hot loop decodes tens of thousands of points a second)."""

    key: str
    offset: int
    source: ModbusSource
    range: tuple[float, float] | None
    codec: PointCodec | None = None

    def __post_init__(self) -> None:
        if self.codec is None:
            object.__setattr__(self, "codec", codec_for(self.source))


@dataclass(frozen=True, slots=True)
class ModbusRead:
    """One Modbus request: a function code, a unit id and a contiguous block of registers or bits."""

    unit: int
    function: ModbusFunction
    start: int
    count: int
    points: tuple[ModbusPlanned, ...]
    # Compiled once: one struct that unpacks every plain big-endian number of the block in a single C call,
    # the points it yields (key, scale, offset, range), and the points left for the codec one by one.
    block_struct: struct.Struct | None = field(default=None, compare=False)
    fast: tuple[tuple[str, float, float, tuple[float, float] | None], ...] = field(default=(), compare=False)
    slow: tuple[ModbusPlanned, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.block_struct is not None or self.function in (ModbusFunction.COIL, ModbusFunction.DISCRETE_INPUT):
            object.__setattr__(self, "slow", self.points)
            return
        fmt, cursor, fast, slow = ">", 0, [], []
        for p in sorted(self.points, key=lambda q: q.offset):
            c = p.codec
            if (c is not None and c.kind == "number" and not c.swap_words and not c.byte_little
                    and p.offset >= cursor and c.value_struct is not None):
                gap = (p.offset - cursor) * 2
                fmt += (f"{gap}x" if gap else "") + c.value_struct.format[-1]
                cursor = p.offset + c.count
                fast.append((p.key, c.scale, c.offset, p.range))
            else:
                slow.append(p)
        object.__setattr__(self, "block_struct", struct.Struct(fmt) if fast else None)
        object.__setattr__(self, "fast", tuple(fast))
        object.__setattr__(self, "slow", tuple(slow))

    def describe(self) -> str:
        return (f"unit {self.unit} {self.function.value} {self.start}-{self.start + self.count - 1} "
                f"({self.count}) -> {len(self.points)} points")


@dataclass(frozen=True, slots=True)
class BacnetPlanned:
    key: str
    object_type: str
    instance: int
    property: str
    range: tuple[float, float] | None

    @property
    def object_id(self) -> str:
        return f"{self.object_type},{self.instance}"


@dataclass(frozen=True, slots=True)
class BacnetRead:
    """One BACnet request: an RPM over several objects, or a single ReadProperty when ``rpm`` is False."""

    rpm: bool
    points: tuple[BacnetPlanned, ...]

    def describe(self) -> str:
        kind = "ReadPropertyMultiple" if self.rpm else "ReadProperty"
        first = self.points[0].object_id if self.points else "-"
        return f"{kind} {len(self.points)} properties (from {first})"


Read = ModbusRead | BacnetRead


@dataclass(frozen=True, slots=True)
class ScheduleGroup:
    """Requests polled together at one interval."""

    interval_s: float
    reads: tuple[Read, ...]

    @property
    def point_count(self) -> int:
        return sum(len(r.points) for r in self.reads)


@dataclass(frozen=True)
class DevicePlan:
    """Everything a device's poll loop reads, computed once."""

    device_key: str
    device: Device
    groups: tuple[ScheduleGroup, ...]
    point_keys: tuple[str, ...] = field(default=())
    # reads re-split by an earlier run (the status file's plan_changes) that this plan starts with
    changes: tuple[dict[str, Any], ...] = field(default=())

    @property
    def request_count(self) -> int:
        return sum(len(g.reads) for g in self.groups)

    @property
    def point_count(self) -> int:
        return sum(g.point_count for g in self.groups)

    @property
    def min_interval_s(self) -> float:
        return min((g.interval_s for g in self.groups), default=self.device.poll_interval_s)


def coalesce_modbus(points: Sequence[tuple[str, ModbusSource, tuple[float, float] | None]], unit: int,
                    max_registers: int = 125, max_gap: int = 8) -> list[ModbusRead]:
    """The fewest reads covering ``points`` of one unit id: greedy over sorted addresses, per function code.

    Greedy is optimal here: a read's constraints (length, gap) only get harder as it grows to the right, so
    extending the current read whenever possible never costs an extra request.
    """
    by_function: dict[ModbusFunction, list[tuple[str, ModbusSource, tuple[float, float] | None]]] = defaultdict(list)
    for item in points:
        by_function[item[1].function].append(item)
    reads: list[ModbusRead] = []
    for function in sorted(by_function, key=lambda f: f.value):
        items = sorted(by_function[function], key=lambda it: (it[1].address, it[1].count))
        limit = min(MAX_BITS, max_registers * 16) if items[0][1].is_bit_table else max_registers
        cur: list[tuple[str, ModbusSource, tuple[float, float] | None]] = []
        start = end = 0
        for item in items:
            src = item[1]
            p_start, p_end = src.address, src.address + src.count
            if cur and p_start - end <= max_gap and max(end, p_end) - start <= limit:
                cur.append(item)
                end = max(end, p_end)
                continue
            if cur:
                reads.append(_modbus_read(unit, function, start, end, cur))
            cur, start, end = [item], p_start, p_end
        if cur:
            reads.append(_modbus_read(unit, function, start, end, cur))
    return reads


def _modbus_read(unit: int, function: ModbusFunction, start: int, end: int,
                 items: list[tuple[str, ModbusSource, tuple[float, float] | None]]) -> ModbusRead:
    planned = tuple(ModbusPlanned(key, src.address - start, src, rng) for key, src, rng in items)
    return ModbusRead(unit=unit, function=function, start=start, count=end - start, points=planned)


def sub_read(read: ModbusRead, points: Sequence[ModbusPlanned]) -> ModbusRead:
    """A read of just ``points`` of ``read``, spanning only their registers (how a rejected coalesced read is
    re-split: the halves drop the gap or the length the device refused)."""
    items = [(p.key, p.source, p.range) for p in points]
    start = min(p.source.address for p in points)
    end = max(p.source.address + p.source.count for p in points)
    return _modbus_read(read.unit, read.function, start, end, items)


def halves(read: ModbusRead) -> tuple[ModbusRead, ModbusRead]:
    """``read`` cut in two between its points, in address order (for bisecting a read the device refuses)."""
    pts = sorted(read.points, key=lambda p: (p.source.address, p.source.count))
    mid = len(pts) // 2
    return sub_read(read, pts[:mid]), sub_read(read, pts[mid:])


def rpm_capacity(device: Device) -> int:
    """Properties per RPM request: the device's max_points, and what fits one APDU if it cannot segment."""
    if not device.rpm:
        return 1
    request_fit = (device.max_apdu - RPM_HEADER_BYTES) // RPM_REQUEST_BYTES
    if device.segmentation:
        return max(1, min(device.max_points, request_fit))
    # Unsegmented, the answer must fit one APDU of the smaller side: a device with a 50/128/206/480-byte
    # max-APDU (MS/TP, LonTalk or ARCNET behind a router) cannot build a longer one, whatever we accept.
    answer_fit = (min(device.max_apdu, OUR_MAX_APDU) - RPM_HEADER_BYTES) // RPM_ANSWER_BYTES
    return max(1, min(device.max_points, request_fit, answer_fit))


def group_bacnet(points: Sequence[BacnetPlanned], device: Device) -> list[BacnetRead]:
    """RPM requests of at most rpm_capacity(device) properties, in object order (or ReadProperty singles)."""
    ordered = sorted(points, key=lambda p: (p.object_type, p.instance, p.property))
    if not device.rpm:
        return [BacnetRead(rpm=False, points=(p,)) for p in ordered]
    size = rpm_capacity(device)
    return [BacnetRead(rpm=True, points=tuple(ordered[i:i + size])) for i in range(0, len(ordered), size)]


def plan_device(device_key: str, device: Device, refs: Iterable[PointRef]) -> DevicePlan:
    """The plan of one device: its points grouped by interval, each group coalesced into reads."""
    by_interval: dict[float, list[PointRef]] = defaultdict(list)
    refs = list(refs)
    for r in refs:
        by_interval[r.point.poll_interval_s or device.poll_interval_s].append(r)
    groups: list[ScheduleGroup] = []
    for interval in sorted(by_interval):
        members = by_interval[interval]
        reads: list[Read]
        if device.protocol in (Protocol.MODBUS, Protocol.MODBUS_RTU):
            items = [(r.key, r.point.modbus, r.point.range) for r in members if r.point.modbus]
            reads = list(coalesce_modbus(items, device.unit_id or 0, device.max_registers, device.max_gap))
        elif device.protocol == Protocol.BACNET:
            planned = [BacnetPlanned(r.key, s.object_type, s.instance, s.property, r.point.range)
                       for r in members if isinstance(s := r.point.bacnet, BacnetSource)]
            reads = list(group_bacnet(planned, device))
        else:
            continue  # MQTT devices are pushed to us, nothing to plan
        if reads:
            groups.append(ScheduleGroup(interval_s=interval, reads=tuple(reads)))
    return DevicePlan(device_key=device_key, device=device, groups=tuple(groups),
                      point_keys=tuple(r.key for r in refs))


def apply_learned(plan: DevicePlan, changes: Sequence[dict[str, Any]]) -> DevicePlan:
    """The plan with each read a device refused in an earlier run replaced by the reads it answered, in the
    order they were learned (``plan_changes`` from the status file: ``read`` and ``parts`` [[start, count]]).
    A change that no longer fits the site file (addresses or points moved) is dropped: it is learned again."""
    groups, applied = [list(g.reads) for g in plan.groups], []
    for change in changes:
        for reads in groups:
            at = next((i for i, r in enumerate(reads) if isinstance(r, ModbusRead)
                       and r.describe() == change.get("read")), None)
            parts = _parts_of(reads[at], change.get("parts") or []) if at is not None else None
            if at is not None and parts:
                reads[at:at + 1] = parts
                applied.append(change)
                break
    if not applied:
        return plan
    return replace(plan, groups=tuple(ScheduleGroup(g.interval_s, tuple(reads))
                                      for g, reads in zip(plan.groups, groups, strict=True)),
                   changes=tuple(applied))


def _parts_of(read: Read, ranges: Sequence[Sequence[int]]) -> list[ModbusRead] | None:
    """``read`` cut into the given register ranges, if every point falls in exactly one of them."""
    if not isinstance(read, ModbusRead):
        return None
    parts = []
    try:
        for start, count in ranges:
            pts = [p for p in read.points
                   if start <= p.source.address and p.source.address + p.source.count <= start + count]
            if not pts:
                return None
            parts.append(sub_read(read, pts))
    except (TypeError, ValueError):  # a hand-edited or foreign status file: ignore the change
        return None
    return parts if sum(len(p.points) for p in parts) == len(read.points) else None


def plan_site(site: Site, learned: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, DevicePlan]:
    """A plan for every polled (Modbus / BACnet) device of the site, by device key; ``learned`` (the status
    file's re-split reads, see ``apply_learned``) starts a device with the reads it answered last run."""
    refs_by_device: dict[str, list[PointRef]] = defaultdict(list)
    for ref in site.points.values():
        refs_by_device[f"{ref.building.id}/{ref.device.id}"].append(ref)
    plans: dict[str, DevicePlan] = {}
    for key, (_building, device) in site.devices.items():
        if device.protocol == Protocol.MQTT:
            continue
        plans[key] = plan_device(key, device, refs_by_device.get(key, []))
        if learned and learned.get(key):
            plans[key] = apply_learned(plans[key], learned[key])
    return plans


def format_plan(plans: dict[str, DevicePlan], learned: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """A human-readable plan, one device per block (what `retrofit collect --plan` prints); ``learned`` (from the
    collector's status file) shows, under a read the device refused, the reads the collector uses instead."""
    learned = learned or {}
    lines: list[str] = []
    total_req = total_pts = 0
    for key, plan in plans.items():
        d = plan.device
        addr = d.serial_port or f"{d.host}:{d.port or d.default_port}"
        lines.append(f"{key} [{d.protocol.value}] {addr}: {plan.point_count} points in {plan.request_count} "
                     f"requests")
        for g in plan.groups:
            lines.append(f"  every {g.interval_s:g} s:")
            for r in g.reads:
                lines.append(f"    {r.describe()}")
                for change in learned.get(key, ()):
                    if change.get("read") == r.describe():
                        lines.append(f"      refused by the device ({change.get('reason')}); the collector reads "
                                     f"it as {len(change.get('now') or [])} requests:")
                        lines.extend(f"        {now}" for now in change.get("now") or [])
        total_req += plan.request_count
        total_pts += plan.point_count
    lines.append(f"total: {total_pts} points in {total_req} requests per cycle ({len(plans)} devices)")
    return "\n".join(lines)
