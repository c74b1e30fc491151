"""From physics to points: which signal each point of a site reads, with noise, faults and counters.

``simulators.binding.bind`` maps a point to a physics signal (a table by Brick class and equipment kind).
``SitePhysics`` holds one BuildingModel per building and evaluates points at any times, on the grid (history)
or between grid points (live), applying sensor faults (stuck, drift, spike, meter spike, counter reset) and
device faults (readings of an offline device are comm-failures, of an erroring device bad).

Energy, water and gas counters are the integral of the simulated power or flow since REF_DAY (2025-01-01
local) plus a per-point starting reading; the integral is kept in per-day checkpoints, so a counter only ever
increases and equals the integral of its power whatever period is asked for.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict

import numpy as np

from buildings.site import Site
from simulators import rand
from simulators.binding import Binding, bind
from simulators.faults import DEVICE_KINDS, SENSOR_KINDS, Fault, FaultKind
from simulators.physics import DT_H, STEP, STEPS, BuildingModel, Sizing, calibrate
from simulators.weather import DAY, Weather

REF_DAY = (dt.date(2025, 1, 1) - dt.date(1970, 1, 1)).days
_CHECKPOINTS: dict[tuple, dict[int, np.ndarray]] = {}  # process-wide: counter readings at day starts
_CP_LOCK = threading.Lock()
Q_GOOD, Q_COMM, Q_BAD = 0, 1, 2


def _fault_key(f: Fault) -> tuple:
    return (f.kind.value, f.target, f.start, f.end, tuple(sorted(f.params.items())), f.id)


def soft_clip(v: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Keep values inside the point's declared [lo, hi] (a sensor cannot report outside its span)."""
    if lo is None or hi is None:
        return v
    return np.clip(v, lo, hi)


class SitePhysics:
    """All buildings of a site: point values at any times, with faults; deterministic for a seed."""

    def __init__(self, site: Site, seed: int = 0, faults: list[Fault] | None = None, retrofit: bool = True,
                 sizing: dict[str, Sizing] | None = None) -> None:
        self.site = site
        self.seed = int(seed)
        self.retrofit = retrofit
        self.weather = Weather(self.seed)
        self.sizing = sizing or {bf.building.id: calibrate(bf, self.seed, self.weather) for bf in site.files}
        self._lock = threading.RLock()
        self.faults: list[Fault] = list(faults or [])
        self._build()

    def _build(self) -> None:
        self.models = {bf.building.id: BuildingModel(bf, self.seed, self.weather, self.faults, self.retrofit,
                                                     self.sizing[bf.building.id]) for bf in self.site.files}
        self._runs: OrderedDict[tuple[str, int, int], dict[str, np.ndarray]] = OrderedDict()
        self._cp: dict[str, dict[int, np.ndarray]] = {}
        self.bindings: dict[str, Binding] = {}
        self.by_building: dict[str, list[Binding]] = {}
        for bid, m in self.models.items():
            names = set(m.run(REF_DAY, 1))
            bl = [bind(ref, m, names, self.seed) for ref in self.site.points.values() if ref.building.id == bid]
            self.by_building[bid] = bl
            for b in bl:
                self.bindings[b.key] = b
        self._point_faults: dict[str, list[Fault]] = {}
        self._device_faults: dict[str, list[Fault]] = {}
        for f in self.faults:
            if f.kind in SENSOR_KINDS:
                self._point_faults.setdefault(f.target, []).append(f)
            elif f.kind in DEVICE_KINDS:
                self._device_faults.setdefault(f.target, []).append(f)

    def set_faults(self, faults: list[Fault]) -> None:
        """Replace the active fault list (the live simulator's inject/clear); caches are rebuilt.

        Counter checkpoints up to the day a changed fault starts stay valid and are kept, so injecting a fault
        does not integrate the energy since 2025 again.
        """
        with self._lock:
            old_cp, old = self._cp, {_fault_key(f): f for f in self.faults}
            self.faults = list(faults)
            self._build()
            new_faults = {_fault_key(f): f for f in self.faults}
            changed = [f for k, f in {**old, **new_faults}.items() if (k in old) != (k in new_faults)]
            for bid, cp in old_cp.items():
                starts = [f.start for f in changed if f.target.split("/")[0] == bid]
                new = self._checkpoints(bid)
                limit = self.models[bid].day_of(min(starts)) if starts else None
                for d, v in cp.items():
                    if limit is None or d <= limit:
                        new.setdefault(d, v)

    @property
    def fallbacks(self) -> list[str]:
        """Point keys no physics matched (they get a constant in their range)."""
        return sorted(k for k, b in self.bindings.items() if b.fallback)

    # --- physics runs ---------------------------------------------------------------------------------
    def run(self, bid: str, day0: int, n: int) -> dict[str, np.ndarray]:
        """Signals of one building for local days [day0, day0 + n) (small LRU cache for the live path)."""
        k = (bid, day0, n)
        with self._lock:
            hit = self._runs.get(k)
            if hit is not None:
                self._runs.move_to_end(k)
                return hit
        sig = self.models[bid].run(day0, n)
        with self._lock:
            self._runs[k] = sig
            while len(self._runs) > 8:
                self._runs.popitem(last=False)
        return sig

    def _counters(self, bid: str) -> list[Binding]:
        return [b for b in self.by_building[bid] if b.kind == "counter"]

    def _day_sums(self, bid: str, day0: int, n: int) -> np.ndarray:
        """Per day (rows) and counter (columns), the increase of each counter over the day."""
        cs = self._counters(bid)
        sig = self.models[bid].run(day0, n)
        out = np.empty((n, len(cs)))
        for j, c in enumerate(cs):
            out[:, j] = sig[c.signal].reshape(n, STEPS).sum(axis=1) * DT_H * c.scale
        return out

    def _checkpoints(self, bid: str) -> dict[int, np.ndarray]:
        """Counter checkpoints, shared by every SitePhysics of the same building, seed, retrofit and faults."""
        if bid not in self._cp:
            m = self.models[bid]
            ident = (m.bf.model_dump_json(), self.seed, self.retrofit,
                     tuple(sorted(_fault_key(f)[:5] for f in m.faults)))
            with _CP_LOCK:
                cp = _CHECKPOINTS.setdefault(ident, {REF_DAY: np.array([c.c0 for c in self._counters(bid)])})
                while len(_CHECKPOINTS) > 64:
                    _CHECKPOINTS.pop(next(iter(_CHECKPOINTS)))
            self._cp[bid] = cp
        return self._cp[bid]

    def counter_base(self, bid: str, day: int) -> np.ndarray:
        """Each counter's reading at the start of local ``day`` (checkpointed; blocks of up to 120 days)."""
        with self._lock:
            cp = self._checkpoints(bid)
            if day in cp:
                return cp[day]
            if day > REF_DAY:
                start = max(d for d in cp if d <= day)
                val = cp[start].copy()
                while start < day:
                    n = min(120, day - start)
                    val = val + self._day_sums(bid, start, n).sum(axis=0)
                    start += n
                    cp[start] = val.copy()
            else:
                start = min(d for d in cp if d >= day)
                val = cp[start].copy()
                while start > day:
                    n = min(120, start - day)
                    val = val - self._day_sums(bid, start - n, n).sum(axis=0)
                    start -= n
                    cp[start] = val.copy()
            return cp[day]

    # --- evaluation -----------------------------------------------------------------------------------
    def evaluate(self, bid: str, t: np.ndarray, keys: list[str] | None = None, sensor_faults: bool = True,
                 cache: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Values of a building's points at UTC times ``t`` (sorted), and quality codes where not good.

        Returns (values by key, quality by key: 0 good, 1 comm-failure, 2 bad; only keys with a bad sample).
        Text points give object arrays.
        """
        m = self.models[bid]
        t = np.asarray(t, dtype=np.float64)
        d0, d1 = m.day_of(float(t[0])), m.day_of(float(t[-1]))
        n = d1 - d0 + 2  # one day more, for interpolation past the last grid point of the last day
        sig = self.run(bid, d0, n) if cache else m.run(d0, n)
        pos = (t - m.grid(d0, 1)[0]) / STEP
        k0 = np.floor(pos + 1e-9).astype(np.int64)
        fr = np.clip(pos - k0, 0.0, 1.0)
        on_grid = bool(np.all(fr < 1e-9))
        sec = np.round(t).astype(np.int64)
        bl = self.by_building[bid] if keys is None else [self.bindings[k] for k in keys]
        base = None
        cs = {c.key: j for j, c in enumerate(self._counters(bid))}
        values: dict[str, np.ndarray] = {}
        quality: dict[str, np.ndarray] = {}
        for b in bl:
            if b.kind == "analog":
                x = sig[b.signal]
                v = x[k0] if on_grid else x[k0] + (x[k0 + 1] - x[k0]) * fr
                v = v * b.scale + b.offset
                if b.noise:
                    nz = rand.normal(b.nkey, sec) * b.noise
                    v = v + (nz * np.abs(v) if b.rel else nz)
                v = soft_clip(v, b.lo, b.hi)
            elif b.kind == "state":
                v = (sig[b.signal][k0] > 0.5).astype(np.float64)
            elif b.kind == "counter":
                if base is None:
                    base = self.counter_base(bid, d0)
                rate = sig[b.signal] * b.scale
                cum = np.concatenate(([0.0], np.cumsum(rate * DT_H)))
                v = base[cs[b.key]] + cum[k0] + rate[k0] * fr * DT_H
            elif b.kind == "battery":
                life = 540.0 * DAY
                ph = float(rand.uniform(b.nkey, 7)) * life
                v = np.round(100.0 - 55.0 * (((t + ph) % life) / life))
            elif b.kind == "rssi":
                v = np.round(-62.0 - 22.0 * float(rand.uniform(b.nkey, 3)) + rand.normal(b.nkey, sec // 60) * 2.0)
            elif b.kind == "text":
                v = np.full(t.shape, b.text, dtype=object)
            else:
                v = np.full(t.shape, b.const)
            if sensor_faults and b.key in self._point_faults:
                v = self._sensor_faults(b, t, v, sec)
            values[b.key] = v
            dfs = self._device_faults.get(b.device)
            if dfs:
                q = np.zeros(t.shape, dtype=np.int8)
                for f in dfs:
                    mk = (t >= f.start) & (t < f.end)
                    q[mk] = Q_COMM if f.kind == FaultKind.DEVICE_OFFLINE else Q_BAD
                if q.any():
                    quality[b.key] = q
        return values, quality

    def value_at(self, key: str, t: float, sensor_faults: bool = False) -> float:
        b = self.bindings[key]
        v, _ = self.evaluate(b.building, np.array([t]), [key], sensor_faults=sensor_faults, cache=True)
        return float(v[key][0])

    def _sensor_faults(self, b: Binding, t: np.ndarray, v: np.ndarray, sec: np.ndarray) -> np.ndarray:
        span = (b.hi - b.lo) if b.lo is not None and b.hi is not None else max(float(np.nanmax(np.abs(v))), 1.0)
        v = np.array(v, dtype=np.float64)
        for f in self._point_faults[b.key]:
            mk = (t >= f.start) & (t < f.end)
            if f.kind == FaultKind.METER_COUNTER_RESET:
                mk = t >= f.start  # a reset is for good: the counter restarts from zero
            if not mk.any():
                continue
            if f.kind == FaultKind.SENSOR_STUCK:
                stuck = f.params.get("value")
                if stuck is None:
                    stuck = self.value_at(b.key, f.start)
                v[mk] = stuck
            elif f.kind == FaultKind.SENSOR_DRIFT:
                rate = f.param("rate_per_day") or 0.2 * span
                v[mk] = v[mk] + rate * (t[mk] - f.start) / DAY
            elif f.kind == FaultKind.SENSOR_SPIKE:
                mag = f.param("magnitude") or 0.4 * span
                u = rand.uniform(b.nkey ^ 0xABCDEF, sec // 60)
                hit = mk & (u < f.param("probability") / 100.0)  # in % of samples
                sign = np.where(rand.uniform(b.nkey ^ 0x123457, sec // 60) < 0.5, -1.0, 1.0)
                v[hit] = v[hit] + sign[hit] * mag
            elif f.kind == FaultKind.METER_SPIKE:
                if b.kind == "counter":
                    v[mk] = v[mk] + f.param("factor") * 1000.0
                else:
                    v[mk] = v[mk] * f.param("factor")
            elif f.kind == FaultKind.METER_COUNTER_RESET and b.kind == "counter":
                v[mk] = v[mk] - self.value_at(b.key, f.start)
        return v

    def day_grid(self, bid: str, day0: int, n: int) -> np.ndarray:
        return self.models[bid].grid(day0, n)

    def local_day(self, bid: str, t: float) -> int:
        return self.models[bid].day_of(t)
