"""Which physics signal each point reads: a table from Brick class (and equipment kind) to signals.

``bind`` looks a point up in ``BY_KIND`` (Brick class and equipment kind), then ``BY_BRICK`` (Brick class),
then ``BY_UNIT`` (unit, for classes the table does not know). A ``Source`` lists candidate signals; the first
one the building's model produces is bound. Templates name ``{e}`` (the equipment id), ``{zone}`` (the
equipment's own zone, else the building mean ``zones``), ``{first_zone}``, ``{ahu}`` (the AHU serving the
equipment, when it is a zone), ``{key}`` (point key), ``{pid}`` (point id) and ``{phase}`` (1-3, from the point
id's last part: ``-a``, ``_l2``, ``.3`` ...).

A point's ``sim:`` dict overrides the table (``signal``, ``value``, ``scale``, ``offset``, ``noise``). A point no
candidate matches gets a plausible constant in its range and is listed in ``SitePhysics.fallbacks``. The only
reading of names is ``NAME_HINTS``, for a room the site file cannot describe otherwise (a data room's air
sensor is cooler than the office mean); each use is logged.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import cache
from string import Formatter

from buildings.site import Point, PointRef
from simulators import rand
from simulators.physics import BuildingModel

log = logging.getLogger(__name__)

# noise standard deviation by unit: (sd, relative?)
NOISE: dict[str, tuple[float, bool]] = {
    "degC": (0.08, False), "%RH": (0.8, False), "ppm": (6.0, False), "%LEL": (0.15, False), "Pa": (3.0, False),
    "kPa": (0.003, False), "kW": (0.006, True), "kVA": (0.006, True), "V": (0.4, False), "A": (0.008, True),
    "PF": (0.003, False), "Hz": (0.02, False), "m3/h": (0.01, True), "L/s": (0.01, True), "lux": (0.03, True),
    "dBm": (2.0, False), "COP": (0.02, True),
}
NOISE_BY_BRICK: dict[str, float] = {"CO_Sensor": 0.3}  # a CO cell is noisier than its unit suggests
EXACT_SUFFIXES = ("_Setpoint", "_Command")  # what the controller wrote: read back exactly, no noise
# signals are in these units; a point in another unit of the same quantity is converted
CONVERT = {("Pa", "kPa"): 0.001, ("m3/h", "L/s"): 1 / 3.6, ("kW", "kVA"): 1.0}
LINE_VOLTAGE_BRICKS = frozenset({"Voltage_Sensor", "Phase_Voltage_Sensor"})
STATE_BRICKS = frozenset({"Leak_Sensor", "Smoke_Detection_Sensor", "Occupancy_Sensor"})  # on/off, not analog
# a counter's starting reading by unit, per 20,000 m2 of floor: (fixed, times a per-point uniform draw)
COUNTER_START: dict[str, tuple[float, float]] = {"kWh": (2e5, 7e5), "m3": (1e4, 5e4)}


@dataclass(slots=True)
class Binding:
    """How one point is computed (plain data; the hot loop reads these)."""

    key: str
    building: str
    device: str  # device key
    kind: str  # analog | state | counter | const | battery | rssi | text
    signal: str = ""
    scale: float = 1.0
    offset: float = 0.0
    noise: float = 0.0
    rel: bool = False
    lo: float | None = None
    hi: float | None = None
    c0: float = 0.0
    const: float = 0.0
    text: str = ""
    nkey: int = 0  # noise key
    fallback: bool = False  # no physics matched: a plausible constant-ish value in range


@dataclass(frozen=True, slots=True)
class Signal:
    """A candidate signal: a template, and how the point's value relates to it."""

    template: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class Source:
    """Where a kind of point reads from: the first candidate the model produces, else ``absent`` if given."""

    candidates: tuple[Signal, ...] = ()
    kind: str = "analog"  # analog | counter (integrates its signal) | battery | rssi (no signal)
    absent: float | None = None  # the sensor reads this constant where the building has no such signal


def src(*candidates: str | Signal, kind: str = "analog", absent: float | None = None) -> Source:
    """A table row: candidate signals in order of preference (strings are plain templates)."""
    sigs = tuple(c if isinstance(c, Signal) else Signal(c) for c in candidates)
    return Source(sigs, kind, absent)


@dataclass(frozen=True, slots=True)
class NameHint:
    """The explicit name fallback: a point of ``brick`` bound to ``signal`` whose equipment id or name has
    ``word`` is offset by ``offset`` (logged, because it reads a name)."""

    brick: str
    signal: str
    word: str
    offset: float
    why: str


_ROOM_RH = src("{e}.rh", "oa_rh")
BY_BRICK: dict[str, Source] = {
    "Outside_Air_Temperature_Sensor": src("{e}.oat", "oat"),
    "Relative_Humidity_Sensor": src("oa_rh"),  # on an AHU or a weather station: outdoor air
    "Zone_Air_Humidity_Sensor": src("{zone}.rh"),
    "Supply_Air_Temperature_Sensor": src("{e}.sat", "{ahu}.sat", Signal("{zone}.t", offset=-8.0)),
    "Mixed_Air_Temperature_Sensor": src("{e}.mat"),
    "Return_Air_Temperature_Sensor": src("{e}.rat", "{zone}.t"),
    "Zone_Air_Temperature_Sensor": src("{zone}.t"),
    "Air_Temperature_Sensor": src("{e}.t", "zones.t"),
    "Supply_Air_Temperature_Setpoint": src("{e}.sat_sp"),
    "Zone_Air_Temperature_Setpoint": src("{zone}.sp", "{first_zone}.sp"),
    "Chilled_Water_Supply_Temperature_Sensor": src("{e}.chws", "plant.chws"),
    "Chilled_Water_Return_Temperature_Sensor": src("{e}.chwr", "plant.chwr"),
    "Condenser_Water_Supply_Temperature_Sensor": src("plant.cws"),
    "Transformer_Temperature_Sensor": src("{e}.tt", "building.tt"),
    "CO2_Sensor": src("{e}.co2", "{zone}.co2"),
    "CO_Sensor": src("{e}.co", absent=1.0),  # clean air: about 1 ppm
    "Combustible_Gas_Sensor": src("{e}.lel", absent=0.3),
    "Leak_Sensor": src("leak:{key}"),
    "Smoke_Detection_Sensor": src("smoke:{key}"),
    "Supply_Air_Static_Pressure_Sensor": src("{e}.dsp"),
    "Supply_Air_Static_Pressure_Setpoint": src("{e}.dsp_sp"),
    "Supply_Fan_Speed_Command": src("{e}.speed"),
    "Fan_Speed_Command": src("{e}.speed"),
    "Pump_Speed_Command": src("{e}.speed"),
    "Supply_Fan_Status": src("{e}.on"),
    "Fan_Status": src("{e}.on"),
    "Pump_Status": src("{e}.on"),
    "Chiller_Status": src("{e}.on"),
    "Elevator_Status": src("{e}.on"),
    "Heating_Valve_Command": src("{e}.hc", absent=0.0),  # no heating coil: closed
    "Cooling_Valve_Command": src("{e}.cc", Signal("{zone}.load", scale=100.0)),  # a zone unit: its load, %
    "Outside_Air_Damper_Command": src("{e}.oad"),
    "Damper_Position_Command": src("{e}.damper", "{e}.oad"),
    "Supply_Air_Flow_Sensor": src("{e}.flow"),
    "Occupancy_Sensor": src("{zone}.occ", "occupied"),
    "Chiller_Power_Sensor": src("{e}.kw"),
    "Cooling_Load_Sensor": src("{e}.q", "plant.q"),
    "Chilled_Water_Flow_Sensor": src("{e}.flow"),
    "Lighting_Status": src("{e}.{pid}", "{e}.on", "_lights.on"),
    "Luminance_Sensor": src("{zone}.lux"),
    "Electric_Power_Sensor": src("{e}.kw", "cat.total"),
    "Active_Power_Sensor": src("{e}.kw", "cat.total"),
    "Peak_Power_Demand_Sensor": src("{e}.peak"),
    "Electric_Energy_Sensor": src("{e}.kw", "cat.total", kind="counter"),
    "Voltage_Sensor": src("{e}.v{phase}"),
    "Phase_Voltage_Sensor": src("{e}.v{phase}"),
    "Current_Sensor": src("{e}.i{phase}"),
    "Phase_Current_Sensor": src("{e}.i{phase}"),
    "Power_Factor_Sensor": src("{e}.pf"),
    "Frequency_Sensor": src("{e}.hz"),
    "Water_Usage_Sensor": src("{e}.flow", "water.flow", kind="counter"),
    "Water_Flow_Sensor": src("{e}.flow", "water.flow"),
    "Gas_Usage_Sensor": src("{e}.flow", "gas.flow", kind="counter"),
    "Battery_Level_Sensor": src(kind="battery"),
    "Signal_Strength_Sensor": src(kind="rssi"),
}
# rooms with a humidity of their own (an AHU's or a weather station's RH sensor reads the outdoor air)
BY_KIND: dict[tuple[str, str], Source] = {
    ("Relative_Humidity_Sensor", kind): _ROOM_RH
    for kind in ("switch_room", "transformer", "garage", "zone", "vav", "fcu", "sensor_node")
}
BY_UNIT: dict[str, Source] = {"COP": src("{e}.cop")}  # a chiller's efficiency, whatever its Brick class
NAME_HINTS: tuple[NameHint, ...] = (
    NameHint("Air_Temperature_Sensor", "zones.t", "data", -1.0, "a data room is kept about 1 K below the offices"),
)


def _phase(point_id: str) -> int:
    """The phase (1-3) a per-phase point measures, from its id's last part (``-a``, ``_ib``, ``.l3``, ``-2``)."""
    last = re.split(r"[-_.]", point_id.lower())[-1]
    for i, tag in enumerate(("a", "b", "c")):
        if last in (tag, f"u{tag}", f"i{tag}", f"v{tag}", f"l{i + 1}", f"p{i + 1}", str(i + 1)) or last.endswith(tag):
            return i + 1
    return 1


@cache
def _fields(template: str) -> tuple[str, ...]:
    return tuple(f for _, f, _, _ in Formatter().parse(template) if f)


def source_of(ref: PointRef) -> Source | None:
    """The table row for a point (kind-specific, else by Brick class, else by unit), or None."""
    p = ref.point
    return BY_KIND.get((p.brick, ref.equipment.kind)) or BY_BRICK.get(p.brick) or BY_UNIT.get(p.unit)


def _context(ref: PointRef, model: BuildingModel, signals: set[str]) -> dict[str, str | None]:
    e = ref.equipment.id
    zone = e if e in model.zone_index or f"{e}.t" in signals else "zones"
    return {"e": e, "zone": zone, "first_zone": model.zones[0].id if model.zones else None,
            "ahu": next((z.ahu for z in model.zones if z.id == e and z.ahu), None),
            "key": ref.key, "pid": ref.point.id, "phase": str(_phase(ref.point.id))}


def pick(source: Source, ctx: dict[str, str | None], signals: set[str]) -> tuple[str, Signal] | None:
    """The first candidate of ``source`` that the model produces, as (signal name, candidate)."""
    for cand in source.candidates:
        if any(ctx.get(f) is None for f in _fields(cand.template)):
            continue
        name = cand.template.format(**ctx)
        if name in signals:
            return name, cand
    return None


def is_state(p: Point) -> bool:
    """An on/off point (status, alarm contact): read as 0/1, never with noise."""
    return p.unit == "bool" or p.brick.endswith("_Status") or p.brick in STATE_BRICKS


def _new(ref: PointRef, seed: int) -> Binding:
    p, b, rng = ref.point, ref.building, ref.point.range
    sd, rel = NOISE.get(p.unit, (0.0, False))
    sd = NOISE_BY_BRICK.get(p.brick, sd)
    if p.brick.endswith(EXACT_SUFFIXES):
        sd = 0.0
    return Binding(key=ref.key, building=b.id, device=f"{b.id}/{ref.device.id}", kind="analog", noise=sd, rel=rel,
                   lo=rng[0] if rng else None, hi=rng[1] if rng else None, nkey=rand.key64("noise", seed, ref.key))


def bind(ref: PointRef, model: BuildingModel, signals: set[str], seed: int) -> Binding:
    """The binding of one point: its signal and how its value is made from it (see module doc)."""
    p, sim = ref.point, ref.point.sim
    bd = _new(ref, seed)
    if p.modbus is not None and p.modbus.type.value == "string":
        bd.kind, bd.text = "text", str(sim.get("value", ref.equipment.name))[: 2 * (p.modbus.length or 1)]
        return bd
    if "value" in sim:
        bd.kind, bd.const = "const", float(sim["value"])
        return _hints(bd, sim)
    if "signal" in sim:
        bd.signal = str(sim["signal"])
        found = bd.signal in signals
    else:
        found = _from_table(bd, ref, model, signals)
    if bd.kind == "counter":
        _counter(bd, ref, seed)
    if not found:
        _fallback(bd, p)
    if is_state(p) and bd.kind == "analog":
        bd.kind, bd.noise = "state", 0.0
    _units(bd, p)
    return _hints(bd, sim)


def _from_table(bd: Binding, ref: PointRef, model: BuildingModel, signals: set[str]) -> bool:
    """Bind by the table; False when no candidate signal exists (the caller falls back)."""
    source = source_of(ref)
    if source is None:
        return False
    bd.kind = source.kind
    if source.kind in ("battery", "rssi"):
        return True
    found = pick(source, _context(ref, model, signals), signals)
    if found is None:
        if source.absent is None:
            return False
        bd.kind, bd.const = "const", source.absent
        return True
    bd.signal, cand = found
    bd.scale, bd.offset = cand.scale * _line_to_line(ref.point), cand.offset
    for hint in NAME_HINTS:
        if hint.brick == ref.point.brick and hint.signal == cand.template:
            _name_hint(bd, ref, hint)
    return True


def _name_hint(bd: Binding, ref: PointRef, hint: NameHint) -> None:
    eq = ref.equipment
    if hint.word in f"{eq.id} {eq.name}".lower():
        bd.offset += hint.offset
        log.info("%s: no signal of its own; bound to %s%+g because its equipment %r says %r (%s)",
                 ref.key, hint.signal, hint.offset, eq.name, hint.word, hint.why)


def _fallback(bd: Binding, p: Point) -> None:
    """No physics for this point: a constant, mid-range; a generic status or alarm bit reads 0 (normal)."""
    if bd.kind == "counter":
        bd.kind, bd.fallback, bd.const = "const", True, 0.0
        return
    state = is_state(p)
    bd.kind, bd.fallback = "const", not (p.brick == "Point" and state)
    bd.const = 0.0 if state or bd.lo is None or bd.hi is None else (bd.lo + bd.hi) / 2


def _counter(bd: Binding, ref: PointRef, seed: int) -> None:
    """A counter starts from a plausible reading for its building's size and reads without noise."""
    u = float(rand.uniform(rand.key64("c0", seed, ref.key), 0))
    start = COUNTER_START.get(ref.point.unit)
    bd.c0 = (start[0] + start[1] * u) * (ref.building.gross_floor_area_m2 / 20000.0) if start else 1e4 * (1 + u)
    bd.noise = 0.0
    if ref.point.unit == "MWh":
        bd.scale = 0.001


def _units(bd: Binding, p: Point) -> None:
    """A point in another unit of the signal's quantity (kPa for Pa, L/s for m3/h) is converted."""
    for (frm, to), f in CONVERT.items():
        if p.unit == to and frm != to and bd.kind in ("analog", "counter"):
            bd.scale *= f


def _line_to_line(p: Point) -> float:
    """A voltage point ranged above 300 V reads line-to-line (400 V); the signal is a phase voltage (230 V)."""
    if p.brick in LINE_VOLTAGE_BRICKS and p.range and p.range[1] > 300 and p.range[0] > 0:
        return math.sqrt(3.0)
    return 1.0


def _hints(bd: Binding, sim: dict) -> Binding:
    """The point's own ``sim:`` scale, offset and noise, on top of the table's."""
    bd.scale *= float(sim.get("scale", 1.0))
    bd.offset += float(sim.get("offset", 0.0))
    if "noise" in sim:
        bd.noise, bd.rel = float(sim["noise"]), False
    return bd
