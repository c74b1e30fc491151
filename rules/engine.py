"""The streaming rules engine: readings in, alarm events out, on event time.

How it works, and why:
- Readings are buffered, sorted by their own timestamp and released up to a *watermark* (the newest timestamp
  seen minus ``lateness_s``), so a collector that delivers slightly out of order gives the same result as a
  sorted replay. ``flush()`` releases everything (end of a replay).
- Rules are evaluated at *ticks*, every ``step_s`` seconds of event time (aligned to the epoch): the tick at T
  sees every reading with ts <= T. Nothing reads the wall clock, so a year of history replays in seconds and
  gives the same alarms as running live.
- Per-point state lives in flat arrays (last good value and time, previous sample, last raw value and quality);
  each rule is evaluated for all its bindings at once with numpy (see rules/expr.py). A value older than
  ``stale_factor`` poll intervals, or whose last reading was not GOOD, is unknown (NaN): an unknown condition
  neither raises nor clears.
- Persistence: a condition must be known-true for the rule's ``for`` to raise; the clear condition (default:
  not the condition) must be known-true for ``clear_for`` to clear (hysteresis). A condition that drops and
  comes back while the alarm is still open counts as a re-trigger, not a new alarm.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from buildings.site import Schedule, Site, point_key
from rules.binding import Binding, BindReport, absent_point_key, bind, device_point_key
from rules.expr import NAN, QUALITY_CODES, Frame, _and, _or
from rules.model import CompiledRule, Family, Severity
from telemetry.reading import Quality, Reading

_QCODE = {q: QUALITY_CODES[q.value] for q in Quality}
_TS = attrgetter("ts")


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """What the engine says happened: a rule raised, cleared or re-triggered on one subject at event time."""

    kind: str  # "raise" | "clear" | "retrigger"
    rule: str
    family: Family
    severity: Severity
    building: str
    equipment: str
    subject: str
    ts: float
    values: dict[str, float]
    message_zh: str
    message_en: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.building, self.subject)


class _Snapshot:
    """Engine point state as numpy arrays at one tick (built once per tick, shared by every rule)."""

    def __init__(self, eng: Engine, now: float) -> None:
        self.val_ts = np.frombuffer(eng._val_ts)
        self.age = now - self.val_ts
        self.qual = np.frombuffer(eng._qual, dtype=np.int8)
        fresh = (self.qual == 0) & (self.age <= eng._max_age)
        self.cur = np.where(fresh, np.frombuffer(eng._val), NAN)
        self._eng = eng
        self.lets: dict[object, np.ndarray] = {}  # let values shared between rules this tick

    @cached_property
    def prev(self) -> np.ndarray:
        return np.frombuffer(self._eng._prev)

    @cached_property
    def raw(self) -> np.ndarray:
        return np.frombuffer(self._eng._raw)

    @cached_property
    def prev2(self) -> np.ndarray:
        return np.frombuffer(self._eng._prev2)

    @cached_property
    def prev3(self) -> np.ndarray:
        return np.frombuffer(self._eng._prev3)


class _View:
    """A rule variable's slice of the snapshot (lazy: only what the rule's functions read is gathered)."""

    def __init__(self, snap: _Snapshot, idx: np.ndarray, value: np.ndarray) -> None:
        self._s = snap
        self._i = idx
        self.value = value

    @cached_property
    def raw(self) -> np.ndarray:
        return self._s.raw[self._i]

    @cached_property
    def prev(self) -> np.ndarray:
        return self._s.prev[self._i]

    @cached_property
    def prev2(self) -> np.ndarray:
        return self._s.prev2[self._i]

    @cached_property
    def prev3(self) -> np.ndarray:
        return self._s.prev3[self._i]

    @cached_property
    def age(self) -> np.ndarray:
        return self._s.age[self._i]

    @cached_property
    def quality(self) -> np.ndarray:
        return self._s.qual[self._i]

    @cached_property
    def lo(self) -> np.ndarray:
        return self._s._eng._lo[self._i]

    @cached_property
    def hi(self) -> np.ndarray:
        return self._s._eng._hi[self._i]


class RuleInstance:
    """One rule with all its bindings, and their persistence state, as arrays."""

    def __init__(self, rule: CompiledRule, bindings: list[Binding], index: dict[str, int],
                 bidx: dict[str, int], step_s: float) -> None:
        self.rule = rule
        self.bindings = bindings
        n = self.n = len(bindings)
        self.var_idx = {v: np.fromiter((index[b.points[v]] for b in bindings), np.int32, n)
                        for v in rule.rule.point_vars}
        consts: dict[str, np.ndarray | float] = {}
        for name in list(rule.rule.params) + sorted(rule.attrs_used):
            src = "params" if name in rule.rule.params else "attrs"
            arr = np.fromiter((getattr(b, src)[name] for b in bindings), float, n)
            consts[name] = float(arr[0]) if n and (arr == arr[0]).all() else arr  # a scalar is cheaper
        self.consts = consts
        self.point_args = set(rule.point_args)
        self.bidx = np.fromiter((bidx[b.building] for b in bindings), np.int32, n)
        self.slots = [f(n, step_s) for f in rule.slot_factories]
        self.step = step_s
        self.active = np.zeros(n, bool)
        self.pend = np.full(n, NAN)
        self.clr = np.full(n, NAN)
        self.last_c = np.full(n, NAN)
        self.n_active = 0
        self.n_pend = 0
        self.let_keys = self._let_keys()
        self.hold = rule.rule.hold
        self.clear_for = rule.rule.clear_for

    def _let_keys(self) -> dict[str, object]:
        """A key per let that is equal for two rules exactly when they compute the same values.

        Same expression over the same points, constants and lets, for the same bindings: the values (and the
        window state behind them) are identical, so the engine computes them once per tick and shares them
        (the G36 rules all need the same 5-minute means and operating state).
        """
        keys: dict[str, object] = {}

        def sig(name: str) -> object:
            if name in keys:
                return keys[name]
            if name in self.var_idx:
                return ("p", self.var_idx[name].tobytes())
            if name == "occupied":
                return ("o", self.bidx.tobytes())
            v = self.consts.get(name)
            return ("c", v.tobytes() if isinstance(v, np.ndarray) else v)
        for name, _fn in self.rule.lets:
            dump, deps = self.rule.let_deps[name]
            keys[name] = (dump, self.n, tuple(sorted((d, sig(d)) for d in deps if d != name)))
        return keys

    def evaluate(self, now: float, snap: _Snapshot, occ: np.ndarray) -> list[AlarmEvent]:
        names: dict[str, np.ndarray] = dict(self.consts)
        points = {}
        for v, idx in self.var_idx.items():
            value = snap.cur[idx]
            names[v] = value
            if v in self.point_args:
                points[v] = _View(snap, idx, value)
        occupied = occ[self.bidx]
        names["occupied"] = occupied
        f = Frame(self.n, now, self.step, names, points, self.slots)  # type: ignore[arg-type]
        cache = snap.lets
        keys = self.let_keys
        for name, fn in self.rule.lets:
            key = keys[name]
            v = cache.get(key)
            if v is None:
                v = cache[key] = fn(f)
            names[name] = v
        c = self.rule.when(f)
        sched = self.rule.rule.schedule
        clear = None
        if self.rule.clear is not None and (self.n_active or self.rule.clear_stateful):
            clear = self.rule.clear(f)  # only open alarms read it: skipped when none is open
        if sched != "always":
            inside = occupied if sched == "occupied" else 1.0 - occupied
            c = _and(c, inside)
            if clear is not None:
                clear = _or(clear, 1.0 - inside)
        if np.ndim(c) == 0:
            c = np.full(self.n, float(c))
        if clear is None:
            clear = 1.0 - c if self.rule.clear is None else np.zeros(self.n)
        return self._transitions(now, c, clear, names)

    def _transitions(self, now: float, c: np.ndarray, clear: Any, names: dict) -> list[AlarmEvent]:
        is_true = c == 1
        if self.n_active == 0 and self.n_pend == 0 and not is_true.any():
            return []  # the common case: nothing true, nothing pending, nothing open
        act = self.active
        self.pend = np.where(~act & is_true, np.where(np.isnan(self.pend), now, self.pend), NAN)
        raise_now = ~act & is_true & (now - self.pend >= self.hold)
        can_clear = act & (clear == 1)
        self.clr = np.where(can_clear, np.where(np.isnan(self.clr), now, self.clr), NAN)
        clear_now = can_clear & (now - self.clr >= self.clear_for)
        retrig = act & ~clear_now & is_true & (self.last_c == 0)
        self.last_c = np.where(np.isnan(c), self.last_c, c)  # only read for open alarms (see fast path)
        self.active = (act | raise_now) & ~clear_now
        self.pend = np.where(raise_now, NAN, self.pend)
        self.clr = np.where(clear_now, NAN, self.clr)
        self.n_active = int(self.active.sum())
        self.n_pend = int((~np.isnan(self.pend)).sum())
        if not (raise_now.any() or clear_now.any() or retrig.any()):
            return []
        out = []
        for kind, mask in (("raise", raise_now), ("clear", clear_now), ("retrigger", retrig)):
            for i in np.flatnonzero(mask):
                out.append(self._event(kind, int(i), now, names))
        return out

    def _event(self, kind: str, i: int, now: float, names: dict[str, np.ndarray]) -> AlarmEvent:
        b = self.bindings[i]
        r = self.rule.rule
        values = {k: float(v[i] if np.ndim(v) == 1 else v) for k, v in names.items() if k != "occupied"}
        ctx = {**values, "building": b.building, "equipment": b.equipment, "subject": b.subject,
               "point": b.subject}
        return AlarmEvent(kind, r.id, r.family, r.severity, b.building, b.equipment, b.subject, now,
                          values, _fmt(r.message.zh, ctx), _fmt(r.message.en, ctx))


def _fmt(template: str, ctx: dict) -> str:
    """Fill a message template (fields were checked at load time to be plain names)."""
    try:
        return template.format_map(ctx)
    except (KeyError, ValueError, TypeError):
        return template


@dataclass
class EngineStats:
    readings: int = 0
    unknown_points: int = 0
    late: int = 0
    ticks: int = 0
    events: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Engine:
    """Evaluate a rule library over a site's readings, on event time. Not thread-safe: one feeder."""

    def __init__(self, site: Site, rules: list[CompiledRule], step_s: float = 60.0, lateness_s: float = 120.0,
                 stale_factor: float = 3.0, buildings: set[str] | None = None, report: BindReport | None = None,
                 min_poll_s: float = 0.0) -> None:
        """``min_poll_s``: the sampling interval of the data when it is coarser than the site's poll intervals
        (e.g. 15-minute history): staleness and the rules' ``poll_s`` use the larger of the two."""
        self.site = site
        self.step = float(step_s)
        self.lateness = float(lateness_s)
        self.report = report or bind(site, rules, buildings)
        files = [bf for bf in site.files if buildings is None or bf.building.id in buildings]
        keys: list[str] = []
        ranges: list[tuple[float, float]] = []
        max_age: list[float] = []
        dev_of: list[int] = []
        dev_index: dict[str, int] = {}
        for bf in files:
            for d in bf.devices:
                dev_index[device_point_key(bf.building.id, d.id)] = len(keys)
                keys.append(sys.intern(device_point_key(bf.building.id, d.id)))
                ranges.append((NAN, NAN))
                max_age.append(max(stale_factor * max(d.poll_interval_s, min_poll_s), 2 * self.step))
                dev_of.append(-1)
        for bf in files:  # what an optional variable reads where the building has no such point
            keys.append(sys.intern(absent_point_key(bf.building.id)))
            ranges.append((NAN, NAN))
            max_age.append(math.inf)
            dev_of.append(-1)
        for bf in files:
            for _eq, p in bf.points():
                poll = p.poll_interval_s or bf.device_by_id[p.source.device].poll_interval_s
                keys.append(sys.intern(point_key(bf.building.id, p.id)))
                ranges.append(p.range or (NAN, NAN))
                max_age.append(max(stale_factor * max(poll, min_poll_s), 2 * self.step))
                dev_of.append(dev_index[device_point_key(bf.building.id, p.source.device)])
        self.keys = keys
        self.index = {k: i for i, k in enumerate(keys)}
        n = len(keys)
        self._max_age = np.array(max_age)
        self._lo = np.array([r[0] for r in ranges], float)
        self._hi = np.array([r[1] for r in ranges], float)
        self._dev_of = dev_of
        # flat typed arrays (8 bytes a value, not 32 for a list of floats); numpy views them without copying
        self._val = array("d", [NAN]) * n
        self._val_ts = array("d", [NAN]) * n
        self._prev = array("d", [NAN]) * n
        self._prev2 = array("d", [NAN]) * n
        self._prev3 = array("d", [NAN]) * n
        self._raw = array("d", [NAN]) * n
        self._raw_ts = array("d", [-math.inf]) * n
        self._qual = array("b", [QUALITY_CODES["stale"]]) * n  # nothing seen yet: unknown
        self.buildings = [bf.building for bf in files]
        self._bidx = {b.id: i for i, b in enumerate(self.buildings)}
        self._tz = [ZoneInfo(b.timezone) for b in self.buildings]
        self._sched: list[Schedule] = [b.schedule for b in self.buildings]
        by_rule = self.report.by_rule()
        self.instances = [RuleInstance(r, by_rule[r.id], self.index, self._bidx, self.step)
                          for r in rules if r.id in by_rule]
        if min_poll_s > 0:
            for inst in self.instances:
                if "poll_s" in inst.consts:
                    inst.consts["poll_s"] = np.maximum(inst.consts["poll_s"], min_poll_s)
                    inst.let_keys = inst._let_keys()
        self._pending: list[Reading] = []
        self._max_seen = -math.inf
        self._next_tick: float | None = None
        self.stats = EngineStats()

    # -- feeding ----------------------------------------------------------------------------------------------

    def feed(self, readings: Iterable[Reading]) -> list[AlarmEvent]:
        """Take a batch of readings (any order); return the alarm events of every tick the watermark passed."""
        batch = list(readings)
        if not batch:
            return []
        self._pending.extend(batch)
        self._max_seen = max(self._max_seen, max(r.ts for r in batch))
        return self._advance(self._max_seen - self.lateness)

    def flush(self) -> list[AlarmEvent]:
        """Release everything buffered and evaluate up to the newest reading (end of a replay)."""
        return self._advance(self._max_seen)

    def advance_to(self, ts: float) -> list[AlarmEvent]:
        """Evaluate ticks up to ``ts`` even without readings (e.g. the end of a replay period)."""
        self._max_seen = max(self._max_seen, ts)
        return self._advance(ts)

    def _advance(self, watermark: float) -> list[AlarmEvent]:
        pend = self._pending
        pend.sort(key=_TS)
        cut = bisect_right(pend, watermark, key=_TS)
        if cut == 0 and self._next_tick is None:
            return []
        release, self._pending = pend[:cut], pend[cut:]
        events: list[AlarmEvent] = []
        if self._next_tick is None:
            self._next_tick = math.ceil(release[0].ts / self.step) * self.step
            start = release[0].ts
            self._val_ts = array("d", [start]) * len(self._val_ts)  # ages count from the start of observation
        index_get = self.index.get
        val, val_ts, prev, prev2, prev3 = self._val, self._val_ts, self._prev, self._prev2, self._prev3
        raw, raw_ts, qual, dev_of = self._raw, self._raw_ts, self._qual, self._dev_of
        good = Quality.GOOD
        stats = self.stats
        nt = self._next_tick
        for r in release:
            ts = r.ts
            while ts > nt:
                self._next_tick = nt
                events.extend(self._tick(nt))
                nt += self.step
            i = index_get(r.point)
            if i is None:
                stats.unknown_points += 1
                continue
            if ts < raw_ts[i]:
                stats.late += 1
                continue
            v = r.value
            q = r.quality
            raw_ts[i] = ts
            d = dev_of[i]
            if q is good and v is not None and v.__class__ is not str:
                v = float(v)
                prev3[i] = prev2[i]
                prev2[i] = prev[i]
                prev[i] = val[i]
                val[i] = v
                val_ts[i] = ts
                raw[i] = v
                qual[i] = 0
                val_ts[d] = ts
                qual[d] = 0
            else:
                code = _QCODE[q] if q is not good else QUALITY_CODES["bad"]
                qual[i] = code
                raw[i] = float(v) if isinstance(v, int | float) else NAN
                if q is not Quality.OUT_OF_RANGE:  # a link or device failure, not the sensor's value
                    qual[d] = code
        stats.readings += len(release)
        while nt <= watermark:
            events.extend(self._tick(nt))
            nt += self.step
        self._next_tick = nt
        stats.events += len(events)
        for e in events:
            stats.by_kind[e.kind] = stats.by_kind.get(e.kind, 0) + 1
        return events

    def _tick(self, now: float) -> list[AlarmEvent]:
        self.stats.ticks += 1
        with np.errstate(all="ignore"):
            return self._evaluate(now)

    def _evaluate(self, now: float) -> list[AlarmEvent]:
        snap = _Snapshot(self, now)
        occ = np.fromiter((1.0 if s.is_occupied(dt.datetime.fromtimestamp(now, tz)) else 0.0
                           for s, tz in zip(self._sched, self._tz, strict=True)), float, len(self._sched))
        out: list[AlarmEvent] = []
        for inst in self.instances:
            out.extend(inst.evaluate(now, snap, occ))
        return out

    # -- introspection -----------------------------------------------------------------------------------------

    def active(self) -> list[tuple[str, str, str]]:
        """Keys (rule, building, subject) of every binding whose alarm is active now."""
        return [b.key for inst in self.instances for b, a in zip(inst.bindings, inst.active, strict=True) if a]

    def state_bytes(self) -> int:
        """Approximate memory held for rule state: point arrays, binding state and window buffers."""
        total = 8 * 7 * len(self.keys) + self._max_age.nbytes
        for inst in self.instances:
            total += inst.active.nbytes + inst.pend.nbytes + inst.clr.nbytes + inst.last_c.nbytes
            total += sum(a.nbytes for a in inst.var_idx.values())
            total += sum(np.asarray(a).nbytes for a in inst.consts.values())
            total += inst.bidx.nbytes
            for s in inst.slots:
                for v in (vars(s).values() if hasattr(s, "__dict__") else s):
                    if isinstance(v, np.ndarray):
                        total += v.nbytes
        return total
