"""The site model: site -> building -> equipment -> point, plus devices and their protocol addresses.

A site is a folder of YAML files, one building per file. Each file holds the building, its devices and its
equipment with their points. Points are keyed site-wide as ``"{building_id}/{point_id}"`` (a *point key*);
devices likewise as ``"{building_id}/{device_id}"``. pydantic checks each file's shape; ``check_building``
checks what pydantic cannot see (references, overlaps, units); ``load_site`` maps every problem back to the
file, line and field so a technician can fix it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from buildings.brick import BRICK_CLASSES, EQUIPMENT_BRICK, UNIT_LIMITS, UNITS
from buildings.strict import Strict
from buildings.yamlfile import (
    Loc,
    Problem,
    bad_scalar,
    field_name,
    line_of,
    located,
    plain,
    read_tree,
    suggest,
    validation_problems,
    yaml_files,
)

ID_PATTERN = r"^[a-z0-9][a-z0-9_.\-]*$"
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


class Names(Strict):
    zh: str
    en: str


class Protocol(StrEnum):
    MODBUS = "modbus"  # Modbus TCP
    MODBUS_RTU = "modbus-rtu"  # Modbus RTU framed over a TCP gateway or a serial port
    BACNET = "bacnet"
    MQTT = "mqtt"


class BuildingUse(StrEnum):
    OFFICE = "office"
    RETAIL = "retail"
    HOTEL = "hotel"
    MIXED = "mixed"
    CONVERTED_INDUSTRIAL = "converted_industrial"


class OwnerKind(StrEnum):
    INDIVIDUAL = "individual"
    ENTERPRISE = "enterprise"
    SOE = "soe"
    GOVERNMENT = "government"
    COLLECTIVE = "collective"
    FUND = "fund"


class OwnerShare(Strict):
    """An owner's exclusive area in the building; shares are by area, as the Civil Code counts them."""

    owner: Id
    name: str
    kind: OwnerKind = OwnerKind.ENTERPRISE
    area_m2: float = Field(gt=0)
    count: int = Field(default=1, ge=1, description="how many owners this row stands for (small units)")


HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")]


class Schedule(Strict):
    """Occupied hours in the building's local time; days not listed are unoccupied."""

    weekdays: tuple[HHMM, HHMM] | None = ("08:00", "18:00")
    saturday: tuple[HHMM, HHMM] | None = None
    sunday: tuple[HHMM, HHMM] | None = None
    holidays: list[dt.date] = Field(default_factory=list)
    workdays: list[dt.date] = Field(
        default_factory=list, description="weekend days worked under weekday hours (调休 make-up days)"
    )

    @model_validator(mode="after")
    def _start_before_end(self) -> Schedule:
        for name in ("weekdays", "saturday", "sunday"):
            span = getattr(self, name)
            if span is not None and span[0] >= span[1]:
                raise ValueError(f"{name}: start {span[0]} must be before end {span[1]} (use 24:00 for midnight; "
                                 "spans past midnight are not supported)")
        return self

    def hours_for(self, day: dt.date) -> tuple[float, float] | None:
        """Occupied (start, end) in hours of the day, or None for an unoccupied day."""
        if day in self.holidays:
            return None
        if day in self.workdays:
            span = self.weekdays
        else:
            span = (self.weekdays if day.weekday() < 5 else self.saturday if day.weekday() == 5 else self.sunday)
        if span is None:
            return None
        return tuple(int(h) + int(m) / 60 for h, m in (s.split(":") for s in span))  # type: ignore[return-value]

    def is_occupied(self, local: dt.datetime) -> bool:
        """Whether a local wall-clock time falls in occupied hours."""
        hours = self.hours_for(local.date())
        if hours is None:
            return False
        h = local.hour + local.minute / 60
        return hours[0] <= h < hours[1]


class Building(Strict):
    id: Id
    name: Names
    address: str
    district: str = "Yuzhong"
    district_code: str = "500103"
    year_built: int = Field(ge=1800, le=2100)
    gross_floor_area_m2: float = Field(gt=0)
    floors_above: int = Field(default=1, ge=1)
    floors_below: int = Field(default=0, ge=0)
    use: BuildingUse
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    timezone: str = "Asia/Shanghai"
    owners: list[OwnerShare] = Field(min_length=1)
    schedule: Schedule = Schedule()
    retrofit_date: dt.date | None = Field(default=None, description="when the retrofit measures took effect")
    retrofit_measures: list[str] = Field(default_factory=list)
    overrides: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="rule id -> parameter -> value, for this building"
    )

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception as exc:  # noqa: BLE001 - zoneinfo raises several types
            raise ValueError(f"unknown timezone {v!r}; use an IANA name such as Asia/Shanghai") from exc
        return v


class Device(Strict):
    """Something the collectors talk to: a Modbus server or gateway unit, a BACnet device, an MQTT gateway."""

    id: Id
    protocol: Protocol
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    serial_port: str | None = Field(default=None, description="modbus-rtu over a local serial port")
    baudrate: int = 9600
    unit_id: int | None = Field(default=None, ge=0, le=255)
    device_instance: int | None = Field(default=None, ge=0, le=4194302)
    max_apdu: int = Field(default=1476, ge=50, le=1476)
    segmentation: bool = True
    rpm: bool = Field(default=True, description="device supports ReadPropertyMultiple")
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    max_registers: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(default=8, ge=0, le=100, description="registers the planner may read through")
    max_points: int = Field(default=50, ge=1, le=1000, description="points per BACnet RPM request")
    poll_interval_s: float = Field(default=60.0, gt=0)
    inter_request_pause_s: float = Field(default=0.0, ge=0, le=5, description="RS-485 gateways need a pause")
    topic_prefix: str | None = Field(default=None, description="mqtt: the gateway's topic root")
    model: str | None = None

    @property
    def default_port(self) -> int:
        return {"modbus": 502, "modbus-rtu": 502, "bacnet": 47808, "mqtt": 1883}[self.protocol.value]

    @model_validator(mode="after")
    def _address_complete(self) -> Device:
        if self.protocol in (Protocol.MODBUS, Protocol.MODBUS_RTU) and self.unit_id is None:
            raise ValueError("a Modbus device needs unit_id (1-247; 1 if the meter has no other setting)")
        if self.protocol == Protocol.BACNET and self.device_instance is None:
            raise ValueError("a BACnet device needs device_instance (read it with `retrofit discover bacnet`)")
        return self


class ModbusFunction(StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"


class ModbusType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BIT = "bit"


REGISTER_COUNT = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bit": 1}


class ModbusSource(Strict):
    device: Id
    function: ModbusFunction = ModbusFunction.HOLDING
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: ModbusType = ModbusType.FLOAT32
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    length: int | None = Field(default=None, ge=1, le=125, description="string: registers")
    bit: int | None = Field(default=None, ge=0, le=15, description="bit within a register")

    @property
    def is_bit_table(self) -> bool:
        return self.function in (ModbusFunction.COIL, ModbusFunction.DISCRETE_INPUT)

    @property
    def count(self) -> int:
        """Registers (or bits, for coils and discrete inputs) this point occupies."""
        if self.is_bit_table:
            return 1
        if self.type == ModbusType.STRING:
            return self.length or 1
        return REGISTER_COUNT[self.type.value]

    @model_validator(mode="after")
    def _type_fits_function(self) -> ModbusSource:
        if self.is_bit_table and self.type != ModbusType.BIT:
            raise ValueError(f"{self.function.value} holds single bits: use type: bit")
        if self.type == ModbusType.STRING and self.length is None:
            raise ValueError("a string point needs length (in registers, two characters each)")
        if self.type == ModbusType.BIT and not self.is_bit_table and self.bit is None:
            raise ValueError("a bit inside a register needs bit: 0-15")
        return self


class BacnetSource(Strict):
    device: Id
    object_type: Literal[
        "analog-input", "analog-output", "analog-value", "binary-input", "binary-output", "binary-value",
        "multi-state-input", "multi-state-value", "accumulator",
    ]
    instance: int = Field(ge=0, le=4194302)
    property: str = "present-value"
    cov: bool = False


class MqttSource(Strict):
    device: Id
    topic: str = Field(min_length=1)
    value_path: str = Field(default="value", description="dotted path of the value in the JSON payload")
    time_path: str | None = Field(default=None, description="dotted path of an epoch or ISO timestamp")

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, v: str) -> str:
        if "#" in v or "+" in v:
            raise ValueError("a point's topic must be concrete (no + or # wildcards)")
        return v


class Point(Strict):
    id: Id
    name: str
    name_zh: str | None = None
    brick: str
    unit: str
    range: tuple[float, float] | None = Field(default=None, description="valid [min, max]; outside is bad")
    poll_interval_s: float | None = Field(default=None, gt=0)
    writable: bool = False
    subitem: Literal["lighting_sockets", "hvac", "power", "special", "total"] | None = Field(
        default=None, description="Chinese sub-item energy category of a meter point (分项)"
    )
    counter: bool = Field(default=False, description="a cumulative counter (energy, volume)")
    sim: dict[str, Any] = Field(default_factory=dict, description="hints for the simulator's physics")
    modbus: ModbusSource | None = None
    bacnet: BacnetSource | None = None
    mqtt: MqttSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Point:
        given = [n for n in ("modbus", "bacnet", "mqtt") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a point needs exactly one source (modbus, bacnet or mqtt); found {given or 'none'}"
            )
        if self.range is not None and self.range[0] >= self.range[1]:
            raise ValueError(f"range min {self.range[0]} must be below max {self.range[1]}")
        return self

    @property
    def source(self) -> ModbusSource | BacnetSource | MqttSource:
        return self.modbus or self.bacnet or self.mqtt  # type: ignore[return-value]

    @property
    def protocol_family(self) -> str:
        return "modbus" if self.modbus else "bacnet" if self.bacnet else "mqtt"


class Equipment(Strict):
    id: Id
    name: str
    name_zh: str | None = None
    kind: str
    brick: str | None = None
    feeds: list[Id] = Field(default_factory=list)
    location: str | None = None
    breaker_rating_a: float | None = Field(default=None, gt=0)
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict)
    points: list[Point] = Field(default_factory=list)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in EQUIPMENT_BRICK:
            raise ValueError(f"unknown equipment kind {v!r}{suggest(v, EQUIPMENT_BRICK)}; "
                             f"known: {', '.join(sorted(EQUIPMENT_BRICK))}")
        return v

    @property
    def brick_class(self) -> str:
        return self.brick or EQUIPMENT_BRICK[self.kind]


class BuildingFile(Strict):
    """One YAML file: a building with its devices and equipment."""

    building: Building
    devices: list[Device] = Field(default_factory=list)
    equipment: list[Equipment] = Field(default_factory=list)

    def points(self) -> Iterator[tuple[Equipment, Point]]:
        for eq in self.equipment:
            for p in eq.points:
                yield eq, p

    @cached_property
    def device_by_id(self) -> dict[str, Device]:
        return {d.id: d for d in self.devices}


def point_key(building_id: str, point_id: str) -> str:
    """The site-wide key of a point, used as the Reading's point and the store's series key."""
    return f"{building_id}/{point_id}"


def split_key(key: str) -> tuple[str, str]:
    """(building_id, local_id) from a point or device key."""
    b, _, p = key.partition("/")
    return b, p


@dataclass(frozen=True, slots=True)
class PointRef:
    """A resolved point with everything downstream needs, for lookups by key.

    A plain slotted dataclass, not a pydantic model: it only points at already validated objects, and a district
    has one per point (60,000 pydantic instances with their __dict__ and fields-set took 70 MB; these take 6).
    """

    key: str
    building: Building
    equipment: Equipment
    point: Point
    device: Device


class Site(BaseModel):
    """A whole site (one or many buildings), as loaded from a folder or a file."""

    model_config = ConfigDict(frozen=True)
    files: list[BuildingFile]
    paths: list[str] = Field(default_factory=list)

    @property
    def buildings(self) -> list[Building]:
        return [f.building for f in self.files]

    def building(self, building_id: str) -> BuildingFile:
        for f in self.files:
            if f.building.id == building_id:
                return f
        raise KeyError(f"no building {building_id!r} in this site")

    @cached_property
    def points(self) -> dict[str, PointRef]:
        """Every point by its site-wide key."""
        out: dict[str, PointRef] = {}
        for f in self.files:
            for eq, p in f.points():
                key = point_key(f.building.id, p.id)
                out[key] = PointRef(key=key, building=f.building, equipment=eq, point=p,
                                    device=f.device_by_id[p.source.device])
        return out

    @cached_property
    def devices(self) -> dict[str, tuple[Building, Device]]:
        """Every device by its site-wide key."""
        return {point_key(f.building.id, d.id): (f.building, d) for f in self.files for d in f.devices}

    def with_ports(self, ports: dict[tuple[str, int], int]) -> Site:
        """A copy of the site whose devices at (host, old port) listen on the new port instead.

        Tests and benchmarks use it with free loopback ports so that runs never collide.
        """
        files = []
        for f in self.files:
            devs = [d.model_copy(update={"port": ports.get((d.host, d.port or d.default_port), d.port)})
                    for d in f.devices]
            files.append(f.model_copy(update={"devices": devs}))
        return Site(files=files, paths=self.paths)

    def write_yaml(self, folder: str | os.PathLike) -> str:
        """Write the site back as one YAML file per building (e.g. after with_free_ports, so that other processes
        can load the same addresses); returns the folder."""
        import yaml

        os.makedirs(folder, exist_ok=True)
        for f in self.files:
            data = f.model_dump(mode="json", exclude_none=True)
            with open(os.path.join(folder, f"{f.building.id}.yaml"), "w", encoding="utf-8") as fh:
                yaml.safe_dump(data, fh, allow_unicode=True, sort_keys=False)
        return str(folder)

    def with_free_ports(self) -> Site:
        """A copy of the site with every Modbus/BACnet endpoint moved to a currently free loopback port.

        Every probe socket stays open until all ports are chosen: a port released after its probe could be handed
        out again to the next one, and two devices would then share a port (seen in CI: one Modbus device of the
        sample site went missing from the simulator)."""
        import socket
        from contextlib import ExitStack

        ports: dict[tuple[str, int], int] = {}
        with ExitStack() as held:
            for f in self.files:
                for d in f.devices:
                    if d.protocol == Protocol.MQTT or d.serial_port:
                        continue
                    key = (d.host, d.port or d.default_port)
                    if key in ports:
                        continue
                    kind = socket.SOCK_DGRAM if d.protocol == Protocol.BACNET else socket.SOCK_STREAM
                    sock = held.enter_context(socket.socket(socket.AF_INET, kind))
                    sock.bind(("127.0.0.1", 0))
                    ports[key] = sock.getsockname()[1]
        return self.with_ports(ports)

    def points_of_device(self, device_key: str) -> list[PointRef]:
        b, d = split_key(device_key)
        return [r for r in self.points.values() if r.building.id == b and r.device.id == d]

    def summary(self) -> dict[str, Any]:
        """Counts for `retrofit site check`: the site's totals and the same per building."""
        by_proto: dict[str, int] = {"modbus": 0, "bacnet": 0, "mqtt": 0}
        per_building = []
        for f in self.files:
            mine = {"modbus": 0, "bacnet": 0, "mqtt": 0}
            for _eq, p in f.points():
                mine[p.protocol_family] += 1
                by_proto[p.protocol_family] += 1
            per_building.append({"id": f.building.id, "devices": len(f.devices), "equipment": len(f.equipment),
                                 "points": sum(mine.values()), "points_by_protocol": mine})
        return {
            "buildings": len(self.files),
            "devices": sum(len(f.devices) for f in self.files),
            "equipment": sum(len(f.equipment) for f in self.files),
            "points": len(self.points),
            "points_by_protocol": by_proto,
            "by_building": per_building,
        }


# --- semantic checks --------------------------------------------------------------------------------

Issue = tuple[Loc, str, str]  # where, what is wrong, what to do


@dataclass
class _Seen:
    """What the checks of one file have met so far: ids and addresses, for duplicates and overlaps."""

    equipment_ids: set[str]
    devices: set[str] = field(default_factory=set)
    endpoints: dict[tuple[str, int | str, int | None], str] = field(default_factory=dict)
    instances: dict[int | None, str] = field(default_factory=dict)
    equipment: set[str] = field(default_factory=set)
    points: set[str] = field(default_factory=set)
    registers: dict[tuple[str, str], list[tuple[int, int, str, int | None]]] = field(default_factory=dict)
    bacnet_objects: dict[tuple[str, str, int, str], str] = field(default_factory=dict)
    mqtt_values: dict[tuple[str, str], str] = field(default_factory=dict)


def check_building(bf: BuildingFile) -> list[Issue]:
    """Checks pydantic cannot express: unique ids, references, protocols, units, overlaps, shares.

    Each check is a small function; they run in file order (devices, then each equipment and its points, then
    the building), so problems come out in the order a technician reads the file.
    """
    seen = _Seen(equipment_ids={e.id for e in bf.equipment})
    out: list[Issue] = []
    for i, d in enumerate(bf.devices):
        for device_check in DEVICE_CHECKS:
            out += device_check(d, ("devices", i), seen)
    for ei, eq in enumerate(bf.equipment):
        for equipment_check in EQUIPMENT_CHECKS:
            out += equipment_check(eq, ("equipment", ei), seen)
        for pi, p in enumerate(eq.points):
            out += _check_point(bf, p, ("equipment", ei, "points", pi), seen)
    for building_check in BUILDING_CHECKS:
        out += building_check(bf.building)
    return out


def _check_point(bf: BuildingFile, p: Point, base: Loc, seen: _Seen) -> list[Issue]:
    out = [issue for point_check in POINT_CHECKS for issue in point_check(p, base, seen)]
    dev = bf.device_by_id.get(p.source.device)
    wrong = _source_device(p, dev, base, bf.device_by_id)
    if wrong or dev is None:
        return out + wrong
    for source_check in SOURCE_CHECKS:
        out += source_check(p, dev, base, seen)
    return out


# devices
def _unique_device_id(d: Device, loc: Loc, seen: _Seen) -> list[Issue]:
    dup = d.id in seen.devices
    seen.devices.add(d.id)
    return [((*loc, "id"), f"duplicate device id {d.id!r}", "device ids must be unique")] if dup else []


def _unique_endpoint(d: Device, loc: Loc, seen: _Seen) -> list[Issue]:
    if d.protocol not in (Protocol.MODBUS, Protocol.MODBUS_RTU, Protocol.BACNET):
        return []
    port = d.serial_port or d.port or d.default_port
    ep = (d.host, port, d.unit_id if d.protocol != Protocol.BACNET else None)
    other = seen.endpoints.get(ep)
    seen.endpoints[ep] = d.id
    if other is None:
        return []
    return [((*loc, "port"), f"device {d.id!r} has the same address as {other!r}",
             "give each device its own port or unit_id")]


def _unique_bacnet_instance(d: Device, loc: Loc, seen: _Seen) -> list[Issue]:
    if d.protocol != Protocol.BACNET:
        return []
    other = seen.instances.get(d.device_instance)
    seen.instances[d.device_instance] = d.id
    if other is None:
        return []
    return [((*loc, "device_instance"), f"device {d.id!r} has the same device_instance as {other!r}",
             "BACnet device instances are unique on a network")]


# equipment
def _unique_equipment_id(eq: Equipment, loc: Loc, seen: _Seen) -> list[Issue]:
    dup = eq.id in seen.equipment
    seen.equipment.add(eq.id)
    return [((*loc, "id"), f"duplicate equipment id {eq.id!r}", "")] if dup else []


def _known_feeds(eq: Equipment, loc: Loc, seen: _Seen) -> list[Issue]:
    return [((*loc, "feeds", fi), f"feeds unknown equipment {fed!r}", f"known: {', '.join(sorted(seen.equipment_ids))}")
            for fi, fed in enumerate(eq.feeds) if fed not in seen.equipment_ids]


# points
def _unique_point_id(p: Point, base: Loc, seen: _Seen) -> list[Issue]:
    dup = p.id in seen.points
    seen.points.add(p.id)
    return [((*base, "id"), f"duplicate point id {p.id!r}", "point ids are unique per building")] if dup else []


def _known_brick(p: Point, base: Loc, seen: _Seen) -> list[Issue]:
    if p.brick in BRICK_CLASSES:
        return []
    return [((*base, "brick"), f"unknown Brick class {p.brick!r}{suggest(p.brick, BRICK_CLASSES)}",
             "add it to buildings/brick.py if it is real")]


def _range_fits_unit(p: Point, base: Loc, seen: _Seen) -> list[Issue]:
    limits = UNIT_LIMITS.get(p.unit)
    if not p.range or not limits or (limits[0] <= p.range[0] and p.range[1] <= limits[1]):
        return []
    return [((*base, "range"), f"range [{p.range[0]:g}, {p.range[1]:g}] is outside what {p.unit} can be "
             f"({limits[0]:g} to {limits[1]:g})", "check the range and the unit")]


def _unit_fits_brick(p: Point, base: Loc, seen: _Seen) -> list[Issue]:
    if p.unit not in UNITS:
        return [((*base, "unit"), f"unknown unit {p.unit!r}{suggest(p.unit, UNITS)}",
                 f"known units: {', '.join(u for u in UNITS if u)}")]
    want = BRICK_CLASSES.get(p.brick)
    if not want or UNITS[p.unit] == want or (want == "state" and p.unit in ("bool", "")):
        return []
    return [((*base, "unit"), f"unit {p.unit!r} measures {UNITS[p.unit]}, but {p.brick} measures {want}",
             "check the unit or the Brick class")]


def _source_device(p: Point, dev: Device | None, base: Loc, devices: dict[str, Device]) -> list[Issue]:
    """The point's source names a device of this file that speaks the source's protocol."""
    src, proto = p.source, p.protocol_family
    if dev is None:
        return [((*base, proto, "device"), f"device {src.device!r} does not exist",
                 f"declare it under devices:{suggest(src.device, devices)}")]
    dev_family = "modbus" if dev.protocol in (Protocol.MODBUS, Protocol.MODBUS_RTU) else dev.protocol.value
    if dev_family == proto:
        return []
    return [((*base, proto, "device"), f"device {dev.id!r} speaks {dev.protocol.value}, not {proto}",
             "point the source at a device of the same protocol")]


# a point's source, on a device that exists and speaks its protocol
def _counter_read_only(p: Point, dev: Device, base: Loc, seen: _Seen) -> list[Issue]:
    return [((*base, "writable"), "a counter cannot be writable", "")] if p.writable and p.counter else []


def _modbus_address(p: Point, dev: Device, base: Loc, seen: _Seen) -> list[Issue]:
    src = p.source
    if not isinstance(src, ModbusSource):
        return []
    out: list[Issue] = []
    if src.type != ModbusType.BIT and src.scale == 0:
        out.append(((*base, "modbus", "scale"), "scale 0 makes every value 0", "use 1"))
    if not src.is_bit_table and src.address + src.count > 65536:
        out.append(((*base, "modbus", "address"), "point runs past register 65535", ""))
    return out + _modbus_overlap(p.id, src, base, seen)


def _modbus_overlap(pid: str, src: ModbusSource, base: Loc, seen: _Seen) -> list[Issue]:
    """Bits inside one register may share it (different bit numbers); everything else must not overlap."""
    start, end = src.address, src.address + src.count
    my_bit = src.bit if src.type == ModbusType.BIT and not src.is_bit_table else None
    taken = seen.registers.setdefault((src.device, src.function.value), [])
    clash = next(((s2, e2, other, bit) for s2, e2, other, bit in taken if start < e2 and s2 < end
                  and not (my_bit is not None and bit is not None and my_bit != bit)), None)
    taken.append((start, end, pid, my_bit))
    if clash is None:
        return []
    s2, e2, other, other_bit = clash
    if my_bit is not None and my_bit == other_bit:
        return [((*base, "modbus", "bit"), f"bit {my_bit} of register {start} is already point {other!r}",
                 "give each point its own bit (0-15)")]
    if src.is_bit_table:
        msg = f"{src.function.value} {start} is already point {other!r}"
    else:
        mine = f"register {start}" if end - start == 1 else f"registers {start}-{end - 1}"
        theirs = f"{s2}" if e2 - s2 == 1 else f"{s2}-{e2 - 1}"
        verb = "overlaps" if end - start == 1 else "overlap"
        msg = f"{src.function.value} {mine} ({src.type.value}) {verb} point {other!r} at {theirs}"
    return [((*base, "modbus", "address"), msg, "a 32-bit value takes two registers, a 64-bit one four; each "
             "coil or discrete input holds one point")]


def _bacnet_object(p: Point, dev: Device, base: Loc, seen: _Seen) -> list[Issue]:
    src = p.source
    if not isinstance(src, BacnetSource):
        return []
    k = (src.device, src.object_type, src.instance, src.property)
    other = seen.bacnet_objects.get(k)
    seen.bacnet_objects[k] = p.id
    if other is None:
        return []
    return [((*base, "bacnet", "instance"), f"{src.object_type},{src.instance} is already point {other!r}", "")]


def _mqtt_topic(p: Point, dev: Device, base: Loc, seen: _Seen) -> list[Issue]:
    src = p.source
    if not isinstance(src, MqttSource):
        return []
    out: list[Issue] = []
    prefix = (dev.topic_prefix or "").rstrip("/")
    if prefix and not src.topic.startswith(prefix + "/"):
        out.append(((*base, "mqtt", "topic"), f"topic {src.topic!r} is not below the device's topic_prefix "
                    f"{prefix!r}", f"use a topic like {prefix}/<sensor>"))
    k = (src.topic, src.value_path)
    other = seen.mqtt_values.get(k)
    seen.mqtt_values[k] = p.id
    if other is not None:
        out.append(((*base, "mqtt", "value_path"), f"{src.topic} {src.value_path} is already point {other!r}",
                    "each point reads its own value_path"))
    return out


# the building
def _owner_areas(b: Building) -> list[Issue]:
    total = sum(o.area_m2 for o in b.owners)
    if total <= b.gross_floor_area_m2 * 1.0001:
        return []
    return [(("building", "owners"), f"owners' areas add up to {total:.0f} m2, more than the gross floor area "
             f"{b.gross_floor_area_m2:.0f} m2", "check each owner's area_m2")]


def _owners_once(b: Building) -> list[Issue]:
    ids = [o.owner for o in b.owners]
    return [] if len(set(ids)) == len(ids) else [(("building", "owners"), "an owner is listed twice", "merge the rows")]


DEVICE_CHECKS = (_unique_device_id, _unique_endpoint, _unique_bacnet_instance)
EQUIPMENT_CHECKS = (_unique_equipment_id, _known_feeds)
POINT_CHECKS = (_unique_point_id, _known_brick, _range_fits_unit, _unit_fits_brick)
SOURCE_CHECKS = (_counter_read_only, _modbus_address, _bacnet_object, _mqtt_topic)
BUILDING_CHECKS = (_owner_areas, _owners_once)


# --- loading ----------------------------------------------------------------------------------------


class SiteError(ValueError):
    """A site file or folder that cannot be loaded; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_building_file(path: str) -> BuildingFile:
    """Load and fully check one building file; raise SiteError naming file, line and field."""
    return _load_building_file(path)[0]


def _load_building_file(path: str) -> tuple[BuildingFile, Any]:
    """The checked building file and its ruamel tree (None when the fast path read it).

    Fast path: libyaml's C parser reads a valid file about ten times faster than ruamel's pure-Python
    round-trip loader. Anything wrong (or no libyaml) and the file is read again by ruamel, which knows the
    line of every node, and the problems are reported from that reading.
    """
    fast = _fast_building_file(path)
    if fast is not None:
        return fast, None
    return _checked_round_trip(path)


def _fast_building_file(path: str) -> BuildingFile | None:
    """The building file if libyaml reads it and it passes every check; None for 'ask ruamel'."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if text.lstrip().startswith("{"):
            # JSON is YAML 1.2: a generated site file (bench, district tooling) is read by the json module,
            # 20,000 points in 0.1 s where libyaml takes 7 s. Duplicate keys -> ask ruamel, as below.
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        else:
            import yaml

            data = yaml.load(text, Loader=_fast_loader())  # noqa: S506 - a safe loader (CSafeLoader subclass)
        if not isinstance(data, dict):
            return None
        bf = BuildingFile.model_validate(data)
    except Exception:  # noqa: BLE001 - any failure means: read it again with line numbers
        return None
    return None if check_building(bf) else bf


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


@cache
def _fast_loader() -> type:
    """A libyaml loader that reads scalars as YAML 1.2 (like ruamel) and refuses duplicate keys.

    PyYAML resolves YAML 1.1: `no` as false, `010` as octal 8, `18:00` as 1080. Those resolvers are
    replaced so both paths give the same values.
    """
    import yaml

    drop = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}

    class Loader(yaml.CSafeLoader):  # AttributeError without libyaml: the caller falls back to ruamel
        yaml_implicit_resolvers = {k: [(t, rx) for t, rx in v if t not in drop]
                                   for k, v in yaml.CSafeLoader.yaml_implicit_resolvers.items()}

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            keys = [k.value for k, _v in node.value if isinstance(k, yaml.ScalarNode)]
            if len(keys) != len(set(keys)):
                raise yaml.constructor.ConstructorError(None, None, "duplicate key", node.start_mark)
            return super().construct_mapping(node, deep)

        def construct_yaml_int(self, node: Any) -> int:
            v = self.construct_scalar(node)
            return int(v, 0) if v.lstrip("+-").startswith(("0o", "0x")) else int(v, 10)

    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                 list("-+0123456789"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                   r"|\.(?:nan|NaN|NAN))$"), list("-+.0123456789"))
    Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)
    return Loader


def _checked_round_trip(path: str) -> tuple[BuildingFile, Any]:
    """Read with ruamel's round-trip loader and check; every problem carries its line."""
    from pydantic import ValidationError

    tree = read_tree(path, SiteError, bad_value=bad_scalar, mapping="expected a mapping with building:, devices: and "
                     "equipment:", mapping_hint="see buildings/sites/yuzhong for examples")
    try:
        bf = BuildingFile.model_validate(plain(tree))
    except ValidationError as exc:
        raise SiteError(validation_problems(exc, path, tree, hint=_key_hint)) from None
    issues = check_building(bf)
    if issues:
        raise SiteError(located(path, tree, issues))
    return bf, tree


def _key_hint(err: Any, loc: Loc) -> str:
    """A misspelt key: name the key it probably is."""
    if err["type"] == "extra_forbidden":
        return f"remove or rename the key{suggest(str(loc[-1]), _known_keys())}"
    return ""


def _known_keys() -> list[str]:
    """Every key a site file may use, for "did you mean" hints on a misspelt one."""
    models = (BuildingFile, Building, Names, OwnerShare, Schedule, Device, Equipment, Point, ModbusSource,
              BacnetSource, MqttSource)
    return sorted({name for m in models for name in m.model_fields})


def load_site(path: str) -> Site:
    """Load a site file or folder. All-or-nothing: any problem in any file raises SiteError with all of them."""
    files = yaml_files(path)
    if not files:
        raise SiteError([Problem(file=path, line=None, field="(folder)", message="no .yaml building files here")])
    problems: list[Problem] = []
    loaded: list[tuple[str, BuildingFile, Any]] = []
    for f in files:
        try:
            loaded.append((f, *_load_building_file(f)))
        except SiteError as exc:
            problems.extend(exc.problems)
    ids: dict[str, str] = {}
    for f, bf, tree in loaded:
        if bf.building.id in ids:
            loc: Loc = ("building", "id")
            problems.append(Problem(file=f, line=_line_in(f, tree, loc), field=field_name(loc),
                                    message=f"building id {bf.building.id!r} is also used by {ids[bf.building.id]}",
                                    hint="building ids are unique in a site"))
        ids[bf.building.id] = f
    problems.extend(_shared_endpoints(loaded))
    if problems:
        raise SiteError(problems)
    return Site(files=[bf for _, bf, _ in loaded], paths=files)


_TREES: dict[tuple[str, int, int], Any] = {}


def _line_in(path: str, tree: Any, loc: Loc) -> int | None:
    """The line of loc in a file that loaded fine (read again with ruamel when the fast path read it)."""
    if tree is None:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in _TREES:
            if len(_TREES) > 16:
                _TREES.clear()
            _TREES[key] = read_tree(path, SiteError)
        tree = _TREES[key]
    return line_of(tree, loc)


def _shared_endpoints(loaded: list[tuple[str, BuildingFile, Any]]) -> list[Problem]:
    """Devices of different buildings at one address (or one BACnet device instance on one host).

    Two buildings cannot share a Modbus unit on one host:port or a BACnet port, and BACnet device instances
    must be unique on a network; inside one file check_building already reports it.
    """
    out: list[Problem] = []
    seen: dict[tuple[object, ...], tuple[str, str]] = {}
    for f, bf, tree in loaded:
        mine: set[tuple[object, ...]] = set()
        for i, d in enumerate(bf.devices):
            keys: list[tuple[tuple[object, ...], Loc, str]] = []
            if d.protocol == Protocol.BACNET:
                keys.append((("bacnet", d.host, d.port or d.default_port), ("devices", i, "port"), "port"))
                keys.append((("instance", d.host, d.device_instance), ("devices", i, "device_instance"),
                             "device_instance"))
            elif d.protocol in (Protocol.MODBUS, Protocol.MODBUS_RTU):
                keys.append((("modbus", d.host, d.serial_port or d.port or d.default_port, d.unit_id),
                             ("devices", i, "unit_id" if d.serial_port or d.port else "port"), "address"))
            for key, loc, what in keys:
                other = seen.get(key)
                if other and other[0] != f:
                    out.append(Problem(file=f, line=_line_in(f, tree, loc), field=field_name(loc),
                                       message=f"device {d.id!r} has the same {what} as device {other[1]!r} in "
                                       f"{other[0]}", hint="give each device its own port, unit_id or instance"))
                elif key not in mine:
                    seen[key] = (f, d.id)
                mine.add(key)
    return out
