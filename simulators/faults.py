"""Faults: what can go wrong in a simulated building, scenario files that schedule them, and ground truth.

A fault acts where it would act in a real building: a stuck outdoor-air damper changes the mixed-air
temperature and the coil load, after-hours HVAC runs fans and the chiller (so energy rises), a CO leak raises
the garage CO and starts the garage fans. Sensor faults (stuck, drift, spike, meter spike/reset) change only
what one sensor reports; device faults change how a device answers on the wire (simulators/values.DeviceMode).

A scenario file (YAML) lists faults with a target, a start and an end; it is validated with pydantic and every
problem names the file, line and field, like a site file. ``ground_truth`` exports, as plain data, which fault
hit which point keys when, and which rule family/rule should detect it, so the rules can be scored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from buildings.site import Site, SiteError, split_key
from buildings.strict import Strict
from buildings.yamlfile import Loc, located, plain, read_tree, validation_problems

NAN = float("nan")


class FaultKind(StrEnum):
    SENSOR_STUCK = "sensor_stuck"
    SENSOR_DRIFT = "sensor_drift"
    SENSOR_SPIKE = "sensor_spike"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_ERRORS = "device_errors"
    AFTER_HOURS_HVAC = "after_hours_hvac"
    SIMULTANEOUS_HEAT_COOL = "simultaneous_heat_cool"
    STUCK_OA_DAMPER = "stuck_oa_damper"
    DSP_NOT_MET = "dsp_not_met"
    SWITCH_ROOM_OVERHEAT = "switch_room_overheat"
    CO_GARAGE = "co_garage"
    CO2_HIGH = "co2_high"
    WATER_LEAK = "water_leak"
    SMOKE = "smoke"
    GAS_LEAK = "gas_leak"
    VOLTAGE_UNBALANCE = "voltage_unbalance"
    METER_SPIKE = "meter_spike"
    METER_COUNTER_RESET = "meter_counter_reset"


POINT_UNIT = "point unit"  # a parameter in the unit of the targeted point (a value, a drift, a spike)


@dataclass(frozen=True)
class Param:
    """One fault parameter: its default, its unit, and the range (ends included) a plausible fault spans.

    Percentages are written as percent (``drop: 6`` or ``drop: 6 %`` is 6 %). A value strictly between 0 and 1
    for a percent parameter is refused as a fraction: ``drop: 0.06`` would otherwise mean 0.06 %, and ``drop: 4``
    read as a fraction once drove a phase to 0 V.
    """

    default: float
    unit: str
    lo: float = -math.inf
    hi: float = math.inf
    doc: str = ""
    point_range: str = ""  # "value": inside the target point's declared range; "span": |v| at most its span

    @property
    def percent(self) -> bool:
        return self.unit.startswith("%")

    def range_text(self) -> str:
        """The allowed range in words, for errors and docs."""
        if self.point_range == "value":
            return "inside the point's declared range"
        if self.point_range == "span":
            return f"{'0' if self.lo == 0 else '-span'} to +span of the point's declared range"
        if math.isinf(self.lo) and math.isinf(self.hi):
            return f"any number ({self.unit})"
        return f"{self.lo:g} to {self.hi:g} {self.unit}"

    def value(self, written: Any) -> float:
        """The number a scenario wrote (a number, or a string with this parameter's unit such as '6 %');
        raises ValueError with the expected unit and range."""
        v = self._number(written)
        if not math.isfinite(v):
            raise ValueError(f"{v} is not a finite number")
        if self.percent and 0 < abs(v) < 1:
            raise ValueError(f"{v:g} looks like a fraction, but this parameter is in {self.unit}: write "
                             f"{v * 100:g} for {v * 100:g} %; allowed {self.range_text()}")
        if not self.lo <= v <= self.hi:
            raise ValueError(f"{v:g} {self.unit} is out of range; allowed {self.range_text()}")
        return v

    def _number(self, written: Any) -> float:
        if isinstance(written, int | float) and not isinstance(written, bool):
            return float(written)
        m = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(\S.*?)?\s*$", str(written))
        if not m or isinstance(written, bool):
            raise ValueError(f"{written!r} is not a number; write a number in {self.unit}")
        unit = (m.group(2) or "").replace(" ", "").lower()
        accepted = {self.unit.replace(" ", "").lower(), self.unit.split(" ")[0].lower()} | (
            {"%"} if self.percent else set())
        if unit and (self.unit.startswith(POINT_UNIT) or unit not in accepted):
            if self.unit.startswith(POINT_UNIT):
                raise ValueError(f"{written!r}: write a plain number in the point's unit")
            raise ValueError(f"{written!r} has the wrong unit; this parameter is in {self.unit}")
        return float(m.group(1))


@dataclass(frozen=True)
class KindInfo:
    """What a fault kind targets, which parameters it takes (with unit and range), and who should catch it."""

    level: str  # physics | sensor | device
    targets: tuple[str, ...]  # point | device | building | equipment kinds (ahu, rtu, ...)
    family: str  # sensor_health | energy | safety
    rule: str  # the rule (ids from the rule anchors in shared/reference/fault-rules-and-mv.md)
    params: dict[str, Param]  # parameter -> default, unit, range
    brick: tuple[str, ...] = ()  # point kinds this fault is about (for targets and ground truth)
    what: str = ""


AHU = ("ahu", "rtu")
ZONES = ("zone", "vav", "fcu", "sensor_node", "rtu", "ahu")
KINDS: dict[FaultKind, KindInfo] = {
    FaultKind.SENSOR_STUCK: KindInfo("sensor", ("point",), "sensor_health", "SV-FLATLINE",
                                     {"value": Param(NAN, POINT_UNIT, doc="the value it sticks at (default: "
                                                     "its value at the fault start)", point_range="value")},
                                     what="the sensor repeats its value at the fault start (or params.value)"),
    FaultKind.SENSOR_DRIFT: KindInfo("sensor", ("point",), "sensor_health", "SV-RANGE",
                                     {"rate_per_day": Param(0.0, POINT_UNIT + "/d", point_range="span",
                                                            doc="0 = 20 % of the range per day")},
                                     what="adds rate_per_day (default 20 % of the range per day) x days"),
    FaultKind.SENSOR_SPIKE: KindInfo("sensor", ("point",), "sensor_health", "SV-SPIKE",
                                     {"magnitude": Param(0.0, POINT_UNIT, 0.0, doc="0 = 40 % of the range",
                                                         point_range="span"),
                                      "probability": Param(25.0, "% of samples", 1.0, 100.0)},
                                     what="random samples jump by +-magnitude (default 40 % of the range)"),
    FaultKind.DEVICE_OFFLINE: KindInfo("device", ("device",), "sensor_health", "SV-STALE", {},
                                       what="the device stops answering"),
    FaultKind.DEVICE_ERRORS: KindInfo("device", ("device",), "sensor_health", "SV-COMM", {},
                                      what="the device answers protocol errors (Modbus exception 4, BACnet Error)"),
    FaultKind.AFTER_HOURS_HVAC: KindInfo("physics", ("building", *AHU, "fan"), "energy", "E-2", {},
                                         brick=("Supply_Fan_Status", "Fan_Status", "Supply_Fan_Speed_Command"),
                                         what="AHUs (and the chiller plant) run outside the schedule"),
    FaultKind.SIMULTANEOUS_HEAT_COOL: KindInfo("physics", AHU, "energy", "E-6",
                                               {"heating": Param(60.0, "% open", 5.0, 100.0)},
                                               brick=("Heating_Valve_Command", "Cooling_Valve_Command"),
                                               what="the heating valve leaks/opens to params.heating %, the "
                                                    "cooling valve opens further to compensate"),
    FaultKind.STUCK_OA_DAMPER: KindInfo("physics", AHU, "energy", "G36-FC6",
                                        {"position": Param(100.0, "% open", 0.0, 100.0)},
                                        brick=("Mixed_Air_Temperature_Sensor", "Outside_Air_Damper_Command"),
                                        what="the outdoor-air damper stays at params.position % whatever the "
                                             "command; mixed air and coil load follow"),
    FaultKind.DSP_NOT_MET: KindInfo("physics", AHU, "energy", "G36-FC1",
                                    {"pressure": Param(50.0, "% of setpoint", 10.0, 90.0)},
                                    brick=("Supply_Air_Static_Pressure_Sensor", "Supply_Fan_Speed_Command"),
                                    what="duct leak/belt slip: fan at 100 %, static pressure only params.pressure "
                                         "% of setpoint; served zones run warm"),
    FaultKind.SWITCH_ROOM_OVERHEAT: KindInfo("physics", ("switch_room", "transformer"), "safety", "S-1",
                                             {"rise_per_h": Param(3.0, "K/h", 0.1, 1000.0, doc="above ~20 K/h is a "
                                                                 "fire rather than lost cooling"),
                                              "max": Param(52.0, "°C", 35.0, 120.0, doc="a transformer's "
                                                           "oil and windings run hotter than a room")},
                                             brick=("Air_Temperature_Sensor", "Transformer_Temperature_Sensor"),
                                             what="room cooling fails: temperature rises rise_per_h K/h to max"),
    FaultKind.CO_GARAGE: KindInfo("physics", ("garage",), "safety", "S-4",
                                  {"rise_per_h": Param(60.0, "ppm/h", 1.0, 10000.0),
                                   "max": Param(220.0, "ppm", 20.0, 1500.0)},
                                  brick=("CO_Sensor",), what="a car idling / exhaust leak: CO rises to max ppm; "
                                                             "garage fans start"),
    FaultKind.CO2_HIGH: KindInfo("physics", ZONES, "safety", "S-5",
                                 {"ventilation": Param(15.0, "% of normal", 5.0, 80.0)},
                                 brick=("CO2_Sensor",), what="outdoor air to the occupied zone drops to "
                                                             "params.ventilation % of normal: CO2 builds up"),
    FaultKind.WATER_LEAK: KindInfo("physics", ("point",), "safety", "S-7", {"flow_m3h": Param(1.5, "m3/h", 0.01, 50.0)},
                                   brick=("Leak_Sensor",), what="the leak sensor trips; the water meter sees the "
                                                                "extra flow"),
    FaultKind.SMOKE: KindInfo("physics", ("point",), "safety", "S-8", {}, brick=("Smoke_Detection_Sensor",),
                              what="the smoke detector trips"),
    FaultKind.GAS_LEAK: KindInfo("physics", ("kitchen",), "safety", "S-12", {"lel": Param(30.0, "%LEL", 1.0, 100.0)},
                                 brick=("Combustible_Gas_Sensor",), what="combustible gas rises to params.lel %LEL"),
    FaultKind.VOLTAGE_UNBALANCE: KindInfo("physics", ("meter", "transformer", "switch_room"), "safety", "S-9",
                                          {"drop": Param(6.0, "%", 0.5, 30.0, doc="NEMA unbalance is about drop / 3")},
                                          brick=("Phase_Voltage_Sensor", "Voltage_Sensor"),
                                          what="phase B sags by params.drop %; currents unbalance"),
    FaultKind.METER_SPIKE: KindInfo("sensor", ("point",), "sensor_health", "SV-SPIKE",
                                    {"factor": Param(8.0, "x", 1.5, 1000.0)},
                                    brick=("Electric_Power_Sensor", "Active_Power_Sensor", "Electric_Energy_Sensor",
                                           "Water_Usage_Sensor", "Gas_Usage_Sensor"),
                                    what="a meter reports params.factor x its value (power) or a jump (counter)"),
    FaultKind.METER_COUNTER_RESET: KindInfo("sensor", ("point",), "sensor_health", "SV-COUNTER-RESET", {},
                                            brick=("Electric_Energy_Sensor", "Water_Usage_Sensor",
                                                   "Gas_Usage_Sensor"),
                                            what="the counter restarts from 0 at the fault start (permanently)"),
}

SENSOR_KINDS = {k for k, i in KINDS.items() if i.level == "sensor"}
DEVICE_KINDS = {k for k, i in KINDS.items() if i.level == "device"}


@dataclass(frozen=True)
class Fault:
    """A fault at run time: plain data, times in UTC epoch seconds (end may be inf)."""

    kind: FaultKind
    target: str  # "building", "building/point", "building/equipment" or "building/device"
    start: float
    end: float = math.inf
    params: dict[str, float] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        # a fault made in code (a bench, a test) is held to the same units and ranges as a scenario file's
        problems = param_problems(self.kind, self.params)
        if problems:
            raise ValueError("; ".join(f"fault {self.id or self.kind.value} params.{n}: {m}" + (f" ({h})" if h else "")
                                       for n, m, h in problems))

    def param(self, name: str) -> float:
        """The parameter's value, or its declared default (in the unit of KINDS[kind].params[name])."""
        if name in self.params:
            return float(self.params[name])
        spec = KINDS[self.kind].params.get(name)
        return spec.default if spec is not None else 0.0

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


# --- scenario files ---------------------------------------------------------------------------------

_REL = re.compile(r"^\+(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_DUR = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """'1d2h30m' / '90m' / '45s' -> seconds; raises ValueError with the accepted form."""
    m = _DUR.match(text.strip())
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration; write e.g. 90m, 2h, 1d12h")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


class FaultSpec(Strict):
    """One fault in a scenario file."""

    id: str | None = None
    kind: FaultKind
    target: str = Field(min_length=1, description="building, building/point, building/equipment or building/device")
    start: dt.datetime | dt.date | str = Field(description="ISO time (naive = building local time) or '+2h' "
                                                          "after the run start")
    end: dt.datetime | dt.date | str | None = None
    duration: str | None = None
    params: dict[str, float | str] = Field(default_factory=dict, description="parameter -> number in its unit "
                                           "(see KINDS), or a string with the unit such as '6 %'")

    @field_validator("start", "end")
    @classmethod
    def _time_form(cls, v: Any) -> Any:
        if isinstance(v, str) and not _REL.match(v.strip()):
            try:
                return dt.datetime.fromisoformat(v)
            except ValueError:
                raise ValueError(f"{v!r} is neither an ISO time nor a relative time like +2h or +1d6h") from None
        return v

    @field_validator("duration")
    @classmethod
    def _dur(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.end is not None and self.duration is not None:
            raise ValueError("give end or duration, not both")
        return self

    def numbers(self) -> dict[str, float]:
        """The parameters as plain numbers in their declared units (call after ``param_problems`` is empty)."""
        known = KINDS[self.kind].params
        return {k: known[k].value(v) for k, v in self.params.items()}


_RENAMED = {"fraction": "pressure (now in % of setpoint)"}


def param_problems(kind: FaultKind, params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(parameter, message, hint) for every parameter that is unknown to the kind, not a number in its unit,
    or outside its range: checked before anything runs, for scenario files and live injection alike."""
    known = KINDS[kind].params
    out = []
    for name, written in params.items():
        spec = known.get(name)
        if spec is None:
            hint = f"known: {', '.join(f'{k} ({p.unit})' for k, p in known.items()) or 'none'}"
            if name in _RENAMED and _RENAMED[name].split()[0] in known:
                hint = f"{name} was renamed: write {_RENAMED[name]}; {hint}"
            out.append((name, f"{kind.value} takes no parameter {name!r}", hint))
            continue
        try:
            spec.value(written)
        except ValueError as exc:
            hint = spec.doc or ("percent is written as percent: 6 means 6 %" if spec.percent else "")
            out.append((name, f"{kind.value} parameter {name}: {exc}", hint))
    return out


def point_param_problems(kind: FaultKind, params: dict[str, Any], site: Site,
                         target: str) -> list[tuple[str, str, str]]:
    """(parameter, message, hint) for parameters in the point's unit that do not fit its declared range: a
    stuck value the sensor could not read, a drift or spike larger than the whole span."""
    ref = site.points.get(target.strip("/"))
    if ref is None or ref.point.range is None:
        return []
    lo, hi = ref.point.range
    unit = ref.point.unit or "the point's unit"
    out = []
    for name, spec in KINDS[kind].params.items():
        if name not in params or not spec.point_range:
            continue
        try:
            v = spec.value(params[name])
        except ValueError:
            continue  # already reported by param_problems
        span = hi - lo
        ok = lo <= v <= hi if spec.point_range == "value" else (max(spec.lo, -span) <= v <= span)
        if not ok:
            allowed = f"{lo:g} to {hi:g}" if spec.point_range == "value" else f"{max(spec.lo, -span):g} to {span:g}"
            out.append((name, f"{kind.value} parameter {name}: {v:g} {unit} does not fit {target}'s declared "
                              f"range [{lo:g}, {hi:g}]; allowed {allowed} {unit}", spec.doc))
    return out


def check_params(sc: Scenario, site: Site | None = None) -> list[tuple[Loc, str, str]]:
    """Every fault's parameters (and, with a site, those in the point's unit against its range), each problem
    at its key: ``faults[i].params.name``."""
    out = []
    for i, f in enumerate(sc.faults):
        problems = param_problems(f.kind, f.params)
        if site is not None:
            problems += point_param_problems(f.kind, f.params, site, f.target)
        out += [(("faults", i, "params", name), msg, hint) for name, msg, hint in problems]
    return out


class Scenario(Strict):
    """A scenario file: a named list of faults (plus an optional seed for the physics)."""

    name: str
    description: str = ""
    seed: int | None = None
    faults: list[FaultSpec] = Field(default_factory=list)

    def resolve(self, anchor: float, tz_of: dict[str, str] | None = None, until: float = math.inf) -> list[Fault]:
        """Faults with absolute times: relative times count from ``anchor`` (the run start, epoch s)."""
        out = []
        for i, f in enumerate(self.faults):
            tz = (tz_of or {}).get(split_key(f.target)[0], "Asia/Shanghai")
            start = _epoch(f.start, anchor, tz)
            if f.duration is not None:
                end = start + parse_duration(f.duration)
            elif f.end is not None:
                end = _epoch(f.end, anchor, tz)
            else:
                end = until
            out.append(Fault(kind=f.kind, target=f.target.strip("/"), start=start, end=end, params=f.numbers(),
                             id=f.id or f"{self.name}#{i + 1}"))
        return out


def _epoch(v: dt.datetime | dt.date | str, anchor: float, tz: str) -> float:
    from zoneinfo import ZoneInfo

    if isinstance(v, str):
        return anchor + parse_duration(v.strip()[1:])
    if not isinstance(v, dt.datetime):
        v = dt.datetime(v.year, v.month, v.day)
    if v.tzinfo is None:
        v = v.replace(tzinfo=ZoneInfo(tz))
    return v.timestamp()


def load_scenario(path: str, site: Site | None = None) -> Scenario:
    """Load a scenario file; with a site, also check every target. Raises SiteError naming file/line/field."""
    from pydantic import ValidationError

    tree = read_tree(path, SiteError, mapping="expected a mapping with name: and faults:",
                     mapping_hint="see simulators/scenarios/*.yaml")
    try:
        sc = Scenario.model_validate(plain(tree))
    except ValidationError as exc:
        # start/end are datetime | date | str: a bad one fails each member at one place; report it once
        raise SiteError(validation_problems(exc, path, tree, hint=_hint, members=("datetime", "date", "str"),
                                            one_per_field=True)) from None
    problems = located(path, tree, check_params(sc, site) + (check_targets(sc, site) if site is not None else []))
    if problems:
        raise SiteError(problems)
    return sc


def _hint(err: Any, loc: Loc) -> str:
    if err["type"] == "extra_forbidden":
        return "remove or rename the key"
    return f"known kinds: {', '.join(k.value for k in FaultKind)}" if loc[-1:] == ("kind",) else ""


def target_kinds(site: Site, target: str) -> list[str]:
    """What a target key names in the site: 'building', 'point', 'device' and/or an equipment kind.

    One id can name both a device and an equipment (a meter is often both), hence a list.
    """
    b, local = split_key(target.strip("/"))
    try:
        bf = site.building(b)
    except KeyError:
        return []
    if not local:
        return ["building"]
    out = []
    if target.strip("/") in site.points:
        out.append("point")
    if local in bf.device_by_id:
        out.append("device")
    out += [eq.kind for eq in bf.equipment if eq.id == local]
    return out


def target_kind(site: Site, target: str) -> str | None:
    kinds = target_kinds(site, target)
    return kinds[0] if kinds else None


def _fits(site: Site, kind: FaultKind, target: str, tk: str) -> bool:
    info = KINDS[kind]
    if tk == "point":
        brick = site.points[target.strip("/")].point.brick
        eq_kind = site.points[target.strip("/")].equipment.kind
        if kind in (FaultKind.WATER_LEAK, FaultKind.SMOKE, FaultKind.METER_SPIKE, FaultKind.METER_COUNTER_RESET):
            return brick in info.brick
        if "point" in info.targets:
            return True
        return bool(info.brick) and brick in info.brick and eq_kind in info.targets
    return tk in info.targets


def check_targets(sc: Scenario, site: Site) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Every fault's target must exist and be something this kind of fault can act on."""
    out = []
    buildings = [bf.building.id for bf in site.files]
    for i, f in enumerate(sc.faults):
        loc = ("faults", i, "target")
        tks = target_kinds(site, f.target)
        info = KINDS[f.kind]
        if not tks:
            b = split_key(f.target)[0]
            hint = (f"buildings: {', '.join(buildings)}" if b not in buildings else
                    "write building/point, building/equipment or building/device as in the site files")
            out.append((loc, f"target {f.target!r} is not in the site", hint))
            continue
        if not any(_fits(site, f.kind, f.target, tk) for tk in tks):
            want = ", ".join(info.targets) + (f" (a point of class {', '.join(info.brick)})" if info.brick else "")
            out.append((loc, f"{f.kind.value} cannot act on {f.target!r} (a {' / '.join(tks)})",
                        f"target one of: {want}"))
    return out


# --- ground truth -------------------------------------------------------------------------------------


def affected_points(site: Site, fault: Fault) -> list[str]:
    """The point keys whose readings the fault changes in a way a rule should see."""
    info = KINDS[fault.kind]
    target = fault.target
    tks = target_kinds(site, target)
    tk = ("device" if info.level == "device" and "device" in tks else
          "point" if "point" in tks else next((k for k in tks if k != "device"), tks[0] if tks else None))
    if tk == "point":
        pref = site.points[target]
        if info.level in ("sensor",) or fault.kind in (FaultKind.WATER_LEAK, FaultKind.SMOKE):
            return [target]
        eq_key, b = f"{pref.building.id}/{pref.equipment.id}", pref.building.id
    elif tk == "device":
        return sorted(r.key for r in site.points_of_device(target))
    else:
        eq_key, b = target, split_key(target)[0]
    refs = [r for r in site.points.values() if r.building.id == b]
    if tk == "building" or split_key(eq_key)[1] == "":
        mine = refs
    else:
        mine = [r for r in refs if f"{b}/{r.equipment.id}" == eq_key]
    keys = sorted(r.key for r in mine if not info.brick or r.point.brick in info.brick)
    if fault.kind == FaultKind.CO2_HIGH and tk == "point":
        keys = [target]
    return keys


def ground_truth(faults: list[Fault], site: Site) -> list[dict[str, Any]]:
    """Plain records for scoring detection: fault id and kind, points, start/end (epoch s), family and rule."""
    out = []
    for f in faults:
        info = KINDS[f.kind]
        out.append({
            "id": f.id, "kind": f.kind.value, "target": f.target, "building": split_key(f.target)[0],
            "points": affected_points(site, f), "start": f.start, "end": None if math.isinf(f.end) else f.end,
            "family": info.family, "rule": info.rule, "level": info.level,
        })
    return out


def scenario_ground_truth(path: str, site: Site, anchor: float, until: float = math.inf) -> list[dict[str, Any]]:
    """Load a scenario file against a site and return its ground truth (see ``ground_truth``)."""
    sc = load_scenario(path, site)
    return ground_truth(sc.resolve(anchor, {b.id: b.timezone for b in site.buildings}, until), site)
