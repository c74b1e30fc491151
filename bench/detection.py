"""Detection benchmark: how well the rule library finds simulated faults, and how quiet it is without them.

From a seed it generates scenarios: every fault kind on every building and equipment (or point) it can act on,
magnitudes drawn from subtle to severe (but above the rule's declared threshold: a fault the library does not
claim to see is not counted against it), in a week of January, April, July, August, October and December 2026,
at 15-minute and 1-minute sampling; plus a fault-free week of every building in each of those months at both
15-minute and 1-minute sampling (--quick: January and August, and at 1 minute only the Tuesday, counted as 1/7
building-week). Each scenario is simulated (simulators.points.SitePhysics, one fault) and replayed through the
full library (rules.engine.Engine, on event time, as `retrofit rules replay` does) from a day before the fault
(6 h at 1-minute sampling) to 2 h after it; alarms are scored against the ground truth (simulators.faults.ground_truth):

- precision and recall per family and per rule (a fault is found when an alarm of its family reads one of its
  points, its device, or, for a physical fault, its building, between its start and 2 h after its end);
- latency of step faults against the rule's declared persistence (+ window) + 2 sampling intervals;
- false alarms per fault-free building-week (overall and safety). Baseline, same run, same weeks: the old
  sample-to-sample jump rule (|x - prev(x)| > 35 % of the range, no out-and-back, no start/stop check).

One JSON line per figure (bench, metric, value, unit, baseline, ratio), then a summary line.
Targets (issue 16): precision and recall >= 0.95 per family, latency within persistence + 2 intervals,
<= 0.1 false alarms per fault-free building-week overall, none in safety.

    python bench/detection.py [--quick] [--seed N] [--workers 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from buildings.site import Site, load_site  # noqa: E402
from retrofit.history import generate  # noqa: E402
from rules.binding import bind  # noqa: E402
from rules.engine import AlarmEvent, Engine  # noqa: E402
from rules.model import CompiledRule, load_rules  # noqa: E402
from simulators.faults import (  # noqa: E402
    KINDS,
    Fault,
    FaultKind,
    _fits,
    affected_points,
    ground_truth,
    target_kinds,
)
from simulators.physics import STEP as PHYSICS_STEP  # noqa: E402
from simulators.points import SitePhysics  # noqa: E402

SITE = Path(__file__).resolve().parent.parent / "buildings" / "sites" / "yuzhong"
TZ = ZoneInfo("Asia/Shanghai")
H, DAY = 3600.0, 86400.0
MONTHS = (1, 4, 7, 8, 10, 12)
FAMILIES = ("sensor_health", "energy", "safety")
# faults that start as a step (not a physical build-up): their detection delay is held to the rule's persistence
STEP_FAULTS = {"sensor_stuck", "sensor_spike", "device_offline", "device_errors", "after_hours_hvac",
               "simultaneous_heat_cool", "stuck_oa_damper", "dsp_not_met", "water_leak", "smoke",
               "voltage_unbalance", "meter_spike", "meter_counter_reset"}
# which point classes a sensor fault is drawn on: those a sensor-health rule of the library reads
SENSOR_CLASSES = {
    FaultKind.SENSOR_STUCK: ("Supply_Air_Temperature_Sensor", "Return_Air_Temperature_Sensor",
                             "Zone_Air_Temperature_Sensor", "Chilled_Water_Supply_Temperature_Sensor",
                             "CO2_Sensor", "Zone_Air_Humidity_Sensor", "Outside_Air_Temperature_Sensor"),
    FaultKind.SENSOR_DRIFT: ("Zone_Air_Temperature_Sensor",),
    FaultKind.SENSOR_SPIKE: ("Supply_Air_Temperature_Sensor", "Zone_Air_Temperature_Sensor", "CO2_Sensor",
                             "Zone_Air_Humidity_Sensor", "Chilled_Water_Supply_Temperature_Sensor",
                             "Relative_Humidity_Sensor", "Air_Temperature_Sensor"),
    FaultKind.METER_SPIKE: ("Electric_Power_Sensor",),
    FaultKind.METER_COUNTER_RESET: ("Electric_Energy_Sensor",),
}
# (parameter, low, high): subtle to severe, above the detecting rule's threshold (rules/library/*.yaml); in the
# parameter's unit (simulators/faults.py KINDS: percent as percent), inside its declared range
MAGNITUDES: dict[FaultKind, list[tuple[str, float, float]]] = {
    FaultKind.SENSOR_SPIKE: [("magnitude_frac", 0.15, 0.5), ("probability", 15.0, 50.0)],
    FaultKind.SENSOR_DRIFT: [("rate_frac", 0.25, 0.6)],
    FaultKind.SIMULTANEOUS_HEAT_COOL: [("heating", 20.0, 90.0)],
    FaultKind.STUCK_OA_DAMPER: [("position", 70.0, 100.0)],
    FaultKind.DSP_NOT_MET: [("pressure", 30.0, 70.0)],
    FaultKind.SWITCH_ROOM_OVERHEAT: [("rise_per_h", 2.0, 8.0), ("max", 45.0, 60.0)],
    FaultKind.CO_GARAGE: [("rise_per_h", 30.0, 120.0), ("max", 50.0, 250.0)],
    FaultKind.CO2_HIGH: [("ventilation", 5.0, 20.0)],
    FaultKind.WATER_LEAK: [("flow_m3h", 0.3, 3.0)],
    FaultKind.GAS_LEAK: [("lel", 15.0, 60.0)],
    FaultKind.VOLTAGE_UNBALANCE: [("drop", 4.0, 10.0)],
    FaultKind.METER_SPIKE: [("factor", 5.0, 12.0)],
}
OCCUPIED_FAULTS = {FaultKind.SIMULTANEOUS_HEAT_COOL, FaultKind.STUCK_OA_DAMPER, FaultKind.DSP_NOT_MET,
                   FaultKind.CO2_HIGH}
HOURS = {FaultKind.SENSOR_STUCK: (3, 8), FaultKind.SENSOR_DRIFT: (30, 40), FaultKind.AFTER_HOURS_HVAC: (2.5, 5),
         FaultKind.SWITCH_ROOM_OVERHEAT: (4, 8), FaultKind.CO2_HIGH: (3, 5)}


def out(metric: str, value: float | None, unit: str, baseline: float | None = None, **extra: object) -> None:
    ratio = round(value / baseline, 3) if baseline and value is not None else None
    print(json.dumps({"bench": "detection", "metric": metric,
                      "value": round(value, 4) if value is not None else None, "unit": unit,
                      "baseline": round(baseline, 4) if baseline is not None else None, "ratio": ratio, **extra},
                     ensure_ascii=False), flush=True)


@dataclass
class Scenario:
    """One simulated run: a building, a time span, a sampling step and (at most) one fault."""

    building: str
    t0: float
    t1: float
    step: float
    fault: Fault | None = None
    week: str = ""


@dataclass
class Outcome:
    """What one scenario's replay raised, already matched to its fault."""

    scenario: Scenario
    alarms: list[dict[str, Any]] = field(default_factory=list)  # rule, family, ts, related
    baseline_alarms: int = 0
    truth: dict[str, Any] | None = None


# --- scenario generation ----------------------------------------------------------------------------------


def week_start(month: int) -> float:
    """Local midnight of the second Monday of the month in 2026 (clear of the New Year and National Day
    holidays, when the buildings are closed and a fault of the HVAC cannot show)."""
    d = dt.date(2026, month, 8)
    d += dt.timedelta(days=(7 - d.weekday()) % 7)
    return dt.datetime(d.year, d.month, d.day, tzinfo=TZ).timestamp()


def targets(site: Site, kind: FaultKind) -> list[str]:
    """Every target this kind of fault can act on in the site (for sensor faults: the points rules read)."""
    info = KINDS[kind]
    out_: list[str] = []
    if kind in SENSOR_CLASSES:
        return sorted(k for k, r in site.points.items() if r.point.brick in SENSOR_CLASSES[kind])
    if info.level == "device":
        return sorted(f"{bf.building.id}/{d.id}" for bf in site.files for d in bf.devices)
    point_kinds = (FaultKind.WATER_LEAK, FaultKind.SMOKE)  # the physics acts on points only for these
    for bf in site.files:
        b = bf.building.id
        cands = ([f"{b}/{p.id}" for _e, p in bf.points()] if kind in point_kinds else
                 [b] + [f"{b}/{e.id}" for e in bf.equipment])
        for c in cands:
            if any(_fits(site, kind, c, tk) for tk in target_kinds(site, c)) and affected_points(
                    site, Fault(kind=kind, target=c, start=0.0)):  # a fault no point sees is not scored
                out_.append(c)
    if kind == FaultKind.AFTER_HOURS_HVAC:  # a building without any HVAC unit or fan cannot show it
        out_ = [c for c in out_ if "/" in c or any(e.kind in ("ahu", "rtu", "fan")
                                                   for e in site.building(c).equipment)]
    return sorted(set(out_))


def rate_limited(site: Site) -> set[str]:
    """The points a physical rate-of-change rule (sv-rate-*) of the library binds: a spike above that rule's
    limit is claimed on them; elsewhere (a weather station's RH: a front can move it fast) only sv-spike's 25 %
    of the range is. Read from the binding, not the point class: the same class binds or not by equipment."""
    return {k for b in bind(site, load_rules()).bindings if b.rule.id.startswith("sv-rate-") for k in b.points.values()}


def draw_fault(rng: np.random.Generator, site: Site, kind: FaultKind, target: str, week0: float,
               n: int, step: float, rate_bound: set[str]) -> Fault:
    """A fault of this kind on target, in the week starting week0: start, duration and magnitude drawn."""
    day = week0 + DAY * int(rng.integers(1, 4))  # Tuesday to Thursday
    if kind in OCCUPIED_FAULTS:
        start = day + H * float(rng.uniform(10.0, 13.0))
    elif kind == FaultKind.AFTER_HOURS_HVAC:  # left running when the building closes (a hotel at midnight)
        hours = site.building(target.split("/")[0]).building.schedule.hours_for(
            dt.datetime.fromtimestamp(day, TZ).date())
        start = day + H * ((hours[1] if hours else 19.0) + float(rng.uniform(0.0, 1.5)))
    else:
        start = day + H * float(rng.uniform(0.0, 23.0))
    start = math.floor(start / 60.0) * 60.0
    lo, hi = HOURS.get(kind, (1.5, 4.0))
    end = start + H * float(rng.uniform(lo, hi))
    params: dict[str, float] = {}
    span = 1.0
    if target in site.points and site.points[target].point.range:
        r = site.points[target].point.range
        span = r[1] - r[0]
    for name, a, b in MAGNITUDES.get(kind, []):
        v = float(rng.uniform(a, b))
        if name == "magnitude_frac":
            if target not in rate_bound:
                v = max(v, float(rng.uniform(0.3, 0.5)))  # only sv-spike (25 % of the range) sees these
            params["magnitude"] = v * span
        elif name == "rate_frac":
            params["rate_per_day"] = v * span
        else:
            params[name] = v
    if kind == FaultKind.METER_COUNTER_RESET:
        end = math.inf
    if kind == FaultKind.METER_SPIKE:  # one bad reading
        start = math.ceil(start / step) * step
        end = start + step
    if kind == FaultKind.SWITCH_ROOM_OVERHEAT:
        if "transformer" in target_kinds(site, target):
            params["max"] = float(rng.uniform(85.0, 100.0))  # room cooling lost: oil and windings run hot
        # long enough to reach its maximum from a room at about 25 C, and stay there a while
        end = start + H * ((params["max"] - 25.0) / params["rise_per_h"] + float(rng.uniform(0.5, 2.0)))
    return Fault(kind=kind, target=target, start=start, end=end, params=params, id=f"{kind.value}#{n}")


def scenarios(site: Site, seed: int, quick: bool) -> list[Scenario]:
    """Fault scenarios (every kind x target, spread over months and samplings) and fault-free weeks."""
    rng = np.random.default_rng(seed)
    out_: list[Scenario] = []
    n = 0
    per_kind = 3 if quick else 24
    rate_bound = rate_limited(site)
    for kind in FaultKind:
        tl = targets(site, kind)
        if not tl:
            continue
        picks = list(rng.permutation(tl))
        while len(picks) < per_kind:
            picks += list(rng.permutation(tl))
        for i, target in enumerate(picks[:max(per_kind, 0 if quick else len(tl))]):
            month = MONTHS[(i + n) % len(MONTHS)]
            step = 60.0 if (i % 4 == 3 and kind != FaultKind.SENSOR_DRIFT) else 900.0
            f = draw_fault(rng, site, kind, str(target), week_start(month), n, step, rate_bound)
            n += 1
            f_end = f.end if math.isfinite(f.end) else f.start + 6 * H
            lead = 6 * H if step < 900 else DAY
            out_.append(Scenario(str(target).split("/")[0], f.start - lead, f_end + 2 * H, step, f,
                                 week=f"2026-{month:02d}"))
    months = (1, 8) if quick else MONTHS
    for month in months:
        w0 = week_start(month)
        for bf in site.files:
            out_.append(Scenario(bf.building.id, w0, w0 + 7 * DAY, 900.0, None, week=f"2026-{month:02d}"))
            # and the same week at 1-minute sampling (--quick: its Tuesday only; a 1-minute week costs 15x)
            t0, t1 = (w0 + DAY, w0 + 2 * DAY) if quick else (w0, w0 + 7 * DAY)
            out_.append(Scenario(bf.building.id, t0, t1, 60.0, None, week=f"2026-{month:02d} 1-min"))
    return out_


# --- running ----------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}
BASELINE_RULE = """rules:
  - id: baseline-jump
    name: {zh: 基线突跳, en: Baseline jump}
    family: sensor_health
    scope: point
    points:
      x:
        class: [Supply_Air_Temperature_Sensor, Return_Air_Temperature_Sensor, Mixed_Air_Temperature_Sensor,
                Outside_Air_Temperature_Sensor, Zone_Air_Temperature_Sensor, Air_Temperature_Sensor,
                Chilled_Water_Supply_Temperature_Sensor, Chilled_Water_Return_Temperature_Sensor,
                Zone_Air_Humidity_Sensor, Relative_Humidity_Sensor, CO2_Sensor]
    params: {jump_fraction: 0.35}
    when: abs(x - prev(x)) > jump_fraction * (range_max - range_min)
    clear_for: 30m
    severity: warning
    message: {zh: "{point}", en: "{point}"}
    source: the sv-spike rule before issue 16 (open-fdd SV-SPIKE as a one-sided sample-to-sample jump)
"""


def _init(seed: int) -> None:
    site = load_site(str(SITE))
    _W["site"] = site
    _W["rules"] = load_rules()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "baseline.yaml"
        p.write_text(BASELINE_RULE, encoding="utf-8")
        _W["baseline"] = load_rules(str(p))
    _W["physics"] = SitePhysics(site, seed=seed)
    _W["clean"] = SitePhysics(site, seed=seed, sizing=_W["physics"].sizing)


def _related(eng: Engine, e: AlarmEvent, g: dict[str, Any]) -> bool:
    """Does this alarm belong to this ground-truth fault (see the module doc)?"""
    if e.building != g["building"] or not (g["start"] <= e.ts <= (g["end"] or math.inf) + 2 * H):
        return False
    if g["level"] == "physics":
        return True
    b = next(b for b in eng.report.bindings if b.key == e.key)
    device = g["target"].split("/", 1)[1]
    return bool(set(b.points.values()) & set(g["points"])) or e.subject == device


def effect(ph: SitePhysics, sc: Scenario, points: list[str]) -> tuple[bool, float]:
    """Is the fault visible in its points' data, and from when (its onset, for latency)?

    Sensor faults: from the first sample the sensor reports differently (a spike fault hits random samples;
    one that hit none is not visible).
    Device faults: from the first sample after the start. Physical faults (and meter spikes): from the first
    sample where a point differs from the fault-free run by more than 2 % of its range (a state point: at all);
    a fault that never does (a damper stuck where the economiser wanted it anyway, a meter reading 8x of almost
    nothing, an AHU left on while the hotel is open anyway) is not visible, and counted apart, not as a miss.
    """
    f = sc.fault
    assert f is not None
    first = math.ceil(f.start / sc.step) * sc.step
    if KINDS[f.kind].level == "device":
        return True, first
    end = f.end if math.isfinite(f.end) else sc.t1
    t = np.arange(first, min(sc.t1, max(end, first + sc.step)), sc.step)
    if f.kind in SENSOR_CLASSES and f.kind != FaultKind.METER_SPIKE:
        bad, _ = ph.evaluate(sc.building, t, [f.target], sensor_faults=True)
        good, _ = ph.evaluate(sc.building, t, [f.target], sensor_faults=False)
        d = np.flatnonzero(np.abs(bad[f.target] - good[f.target]) > 1e-9)
        return bool(d.size), float(t[d[0]]) if d.size else first
    bad, _ = ph.evaluate(sc.building, t, points)
    good, _ = _W["clean"].evaluate(sc.building, t, points)
    when = math.inf
    for k in points:
        rng = ph.site.points[k].point.range
        tol = 0.02 * (rng[1] - rng[0]) if rng else 0.5
        d = np.flatnonzero(np.abs(np.asarray(bad[k], float) - np.asarray(good[k], float)) > tol)
        if d.size:
            when = min(when, float(t[d[0]]))
    # the physics runs on a 15-minute grid (values between are interpolated): a physical fault is fully in
    # effect from the first grid point after it shows
    return math.isfinite(when), math.ceil(when / PHYSICS_STEP) * PHYSICS_STEP if math.isfinite(when) else first


def run_one(sc: Scenario) -> Outcome:
    """Simulate one scenario and replay it through the library (and, fault-free, the baseline rule)."""
    site: Site = _W["site"]
    ph: SitePhysics = _W["physics"]
    faults = [sc.fault] if sc.fault else []
    ph.set_faults(faults)
    lib: list[CompiledRule] = _W["rules"] + ([] if sc.fault else _W["baseline"])
    eng = Engine(site, lib, step_s=sc.step, buildings={sc.building}, min_poll_s=sc.step)
    events: list[AlarmEvent] = []
    for batch in generate(site, sc.t0, sc.t1, step_s=sc.step, physics=ph, buildings=[sc.building], sort=True):
        events += eng.feed(batch)
    events += eng.flush()
    truth = ground_truth(faults, site)[0] if faults else None
    if truth is not None and sc.fault is not None:
        truth["visible"], truth["onset"] = effect(ph, sc, truth["points"])
    oc = Outcome(sc, truth=truth)
    by_rule = {r.id: r for r in lib}
    bindings = {b.key: b for b in eng.report.bindings}
    for e in events:
        if e.kind != "raise":
            continue
        if e.rule == "baseline-jump":
            oc.baseline_alarms += 1
            continue
        r = by_rule[e.rule]
        interval = max(sc.step, bindings[e.key].attrs.get("poll_s", 0.0))  # the data's or the device's
        oc.alarms.append({"rule": e.rule, "family": e.family.value, "ts": e.ts, "severity": e.severity.value,
                          "related": bool(truth and _related(eng, e, truth)),
                          "allowed": r.rule.hold + r.window_s + 2 * interval, "subject": e.subject})
    return oc


# --- scoring ----------------------------------------------------------------------------------------------


def score(outcomes: list[Outcome]) -> dict[str, Any]:
    """Precision/recall per family and rule, latency of step faults, false alarms per fault-free week."""
    fam_alarms: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # [true, all]
    rule_alarms: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    fam_faults: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # [found, all]
    kind_faults: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed: list[str] = []
    false: list[str] = []
    invisible: list[str] = []
    lat_ok, lat_all, lat_over = 0, 0, []
    ff_weeks, ff_alarms, ff_safety, ff_base = 0.0, 0, 0, 0
    ff_rules: dict[str, int] = defaultdict(int)
    ff_by_step: dict[float, list[float]] = defaultdict(lambda: [0.0, 0.0])  # sampling step -> [weeks, alarms]
    for oc in outcomes:
        g = oc.truth
        if g is None:
            weeks = (oc.scenario.t1 - oc.scenario.t0) / (7 * DAY)  # --quick's 1-minute day is 1/7 of a week
            ff_weeks += weeks
            ff_by_step[oc.scenario.step][0] += weeks
            ff_by_step[oc.scenario.step][1] += len(oc.alarms)
            ff_alarms += len(oc.alarms)
            ff_safety += sum(1 for a in oc.alarms if a["family"] == "safety")
            ff_base += oc.baseline_alarms
            for a in oc.alarms:
                ff_rules[a["rule"]] += 1
                false.append(f"{a['rule']} {oc.scenario.building}/{a['subject']} fault-free {oc.scenario.week}")
            continue
        for a in oc.alarms:
            fam_alarms[a["family"]][1] += 1
            rule_alarms[a["rule"]][1] += 1
            if a["related"]:
                fam_alarms[a["family"]][0] += 1
                rule_alarms[a["rule"]][0] += 1
        hits = [a for a in oc.alarms if a["related"] and a["family"] == g["family"]]
        if not g["visible"]:
            invisible.append(f"{g['id']} {g['target']} {oc.scenario.week}")
            continue
        fam_faults[g["family"]][1] += 1
        kind_faults[g["kind"]][1] += 1
        if hits:
            fam_faults[g["family"]][0] += 1
            kind_faults[g["kind"]][0] += 1
        else:
            missed.append(f"{g['id']} {g['target']} {oc.scenario.week} step {oc.scenario.step:g}s "
                          f"{oc.scenario.fault.params if oc.scenario.fault else ''}")
        if hits and g["kind"] in STEP_FAULTS:
            first = min(hits, key=lambda a: a["ts"])
            lat_all += 1
            if first["ts"] - g["onset"] <= first["allowed"]:
                lat_ok += 1
            else:
                lat_over.append(f"{g['id']} {g['target']} {oc.scenario.week} {first['rule']} "
                                f"{first['ts'] - g['onset']:.0f}s > {first['allowed']:.0f}s")
        for a in oc.alarms:
            if not a["related"]:
                false.append(f"{a['rule']} {oc.scenario.building}/{a['subject']} in {g['id']} {g['target']}")
    return {"fam_alarms": fam_alarms, "rule_alarms": rule_alarms, "fam_faults": fam_faults,
            "kind_faults": kind_faults, "missed": missed, "lat_ok": lat_ok, "lat_all": lat_all,
            "lat_over": lat_over, "ff_weeks": ff_weeks, "ff_alarms": ff_alarms, "ff_safety": ff_safety,
            "ff_base": ff_base, "ff_rules": dict(ff_rules), "ff_by_step": dict(ff_by_step), "false": false,
            "invisible": invisible}


def report(s: dict[str, Any], n: int, seconds: float, cpu_s: float) -> None:
    def frac(p: list[int]) -> float | None:
        return p[0] / p[1] if p[1] else None

    for fam in FAMILIES:
        out(f"precision_{fam}", frac(s["fam_alarms"][fam]), "ratio", alarms=s["fam_alarms"][fam][1], target=0.95)
        out(f"recall_{fam}", frac(s["fam_faults"][fam]), "ratio", faults=s["fam_faults"][fam][1], target=0.95)
    for rid, p in sorted(s["rule_alarms"].items()):
        out(f"precision_rule_{rid}", frac(p), "ratio", alarms=p[1])
    for kind, p in sorted(s["kind_faults"].items()):
        out(f"recall_kind_{kind}", frac(p), "ratio", faults=p[1], rule=KINDS[FaultKind(kind)].rule)
    out("latency_within_persistence_plus_2_intervals", s["lat_ok"] / s["lat_all"] if s["lat_all"] else None,
        "ratio", step_faults=s["lat_all"], target=1.0)
    weeks = max(s["ff_weeks"], 1)
    out("false_alarms_per_fault_free_building_week", s["ff_alarms"] / weeks, "alarms/building-week",
        s["ff_base"] / weeks, building_weeks=round(s["ff_weeks"], 2), target=0.1, by_rule=s["ff_rules"])
    for step, (w, k) in sorted(s["ff_by_step"].items()):
        out(f"false_alarms_per_fault_free_building_week_{int(step // 60)}min", k / max(w, 1e-9),
            "alarms/building-week", None, building_weeks=round(w, 2), alarms=int(k), target=0.1)
    out("safety_false_alarms_fault_free", float(s["ff_safety"]), "alarms", building_weeks=round(s["ff_weeks"], 2),
        target=0)
    out("faults_not_visible", float(len(s["invisible"])), "faults", note="the fault changed no point by 2 % "
        "of its range (not counted in recall)")
    out("scenarios", float(n), "runs", seconds=round(seconds, 1), cpu_seconds=round(cpu_s, 1))
    if s["invisible"]:
        print("# not visible: " + "; ".join(s["invisible"][:30]), file=sys.stderr)
    if s["missed"]:
        print("# missed: " + "; ".join(s["missed"][:30]), file=sys.stderr)
    if s["false"]:
        print("# false alarms: " + "; ".join(s["false"][:30]), file=sys.stderr)
    if s["lat_over"]:
        print("# late: " + "; ".join(s["lat_over"][:30]), file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few scenarios per kind (under a minute)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    site = load_site(str(SITE))
    scs = scenarios(site, args.seed, args.quick)
    scs.sort(key=lambda s: -(s.t1 - s.t0) / s.step)  # longest first: the pool finishes together
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(args.seed,)) as ex:
            outcomes = list(ex.map(run_one, scs, chunksize=1))
    else:
        _init(args.seed)
        outcomes = [run_one(s) for s in scs]
    cpu = sum(resource.getrusage(who).ru_utime for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    report(score(outcomes), len(scs), time.perf_counter() - t0, cpu)


if __name__ == "__main__":
    main()
