"""The live simulation of a site: a ValueSource the protocol servers serve.

A clock runs at ``speed`` x real time from a start time; values come from the same physics as the history
(simulators/points.SitePhysics), so a live point continues its backfilled history. Device modes follow the
active device faults. Faults can be injected and cleared while running; a cleared fault keeps its past (its
end is set to now), so energy counters stay consistent.

Values are computed for the whole site at once (one vectorised snapshot) and reused while the simulated
clock moves less than max(``refresh_s`` (2 s), half a second of real time) simulated seconds, so thousands
of register reads per second cost one snapshot (about 0.1 s of CPU for the 456-point sample district).
The first snapshot also computes the energy counters since 2025-01-01 (a few seconds; cached per process).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from buildings.site import Problem, Site, SiteError
from simulators.faults import (
    DEVICE_KINDS,
    KINDS,
    Fault,
    FaultKind,
    FaultSpec,
    Scenario,
    check_targets,
    param_problems,
    point_param_problems,
)
from simulators.physics import STEP
from simulators.points import SitePhysics
from simulators.values import DeviceMode


def _step_floor(t: float) -> float:
    """The start of the physics step (15-minute grid) that contains t."""
    return math.floor(t / STEP) * STEP


class SiteSimulation:
    """A running simulated site (implements simulators.values.ValueSource)."""

    def __init__(self, site: Site, seed: int = 0, speed: float = 1.0, start: float | None = None,
                 faults: list[Fault] | None = None, retrofit: bool = True,
                 clock: Callable[[], float] = time.monotonic, refresh_s: float = 2.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0 (1 = real time, 60 = a minute per second)")
        self.site = site
        self.speed = float(speed)
        self._clock = clock
        self._real0 = clock()
        self._sim0 = float(start) if start is not None else time.time()
        self.physics = SitePhysics(site, seed=seed, faults=faults, retrofit=retrofit)
        self._lock = threading.RLock()
        self._snap_t = -math.inf
        self._snap: dict[str, float | str | None] = {}
        self._seq = 0
        self.refresh_s = refresh_s

    @classmethod
    def from_scenario(cls, site: Site, scenario_path: str | None, seed: int | None = None, speed: float = 1.0,
                      start: float | None = None, **kw: Any) -> SiteSimulation:
        """A simulation with a scenario file's faults (relative times count from ``start``, default now)."""
        from simulators.faults import load_scenario

        t0 = time.time() if start is None else start
        faults: list[Fault] = []
        sc_seed = None
        if scenario_path:
            sc = load_scenario(scenario_path, site)
            faults, sc_seed = sc.resolve(t0, {b.id: b.timezone for b in site.buildings}), sc.seed
        return cls(site, seed=seed if seed is not None else (sc_seed or 0), speed=speed, start=t0, faults=faults,
                   **kw)

    # --- ValueSource ---------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated UTC epoch seconds."""
        return self._sim0 + (self._clock() - self._real0) * self.speed

    def value(self, point_key: str) -> float | str | None:
        """The point's value now (None for an unknown point or while its device is offline)."""
        t = self.now()
        refresh = max(self.refresh_s, 0.5 * self.speed)
        with self._lock:
            if abs(t - self._snap_t) >= refresh:
                self._snap = self.snapshot(t)
                self._snap_t = t
            return self._snap.get(point_key)

    def device_mode(self, device_key: str) -> DeviceMode:
        t = self.now()
        mode = DeviceMode.OK
        for f in self.physics.faults:
            if f.kind in DEVICE_KINDS and f.target == device_key and f.active(t):
                mode = DeviceMode.OFFLINE if f.kind == FaultKind.DEVICE_OFFLINE else DeviceMode.ERRORS
        return mode

    # --- snapshots -----------------------------------------------------------------------------------
    def snapshot(self, t: float | None = None) -> dict[str, float | str | None]:
        """Every point's value at simulated time t (default now)."""
        t = self.now() if t is None else t
        out: dict[str, float | str | None] = {}
        arr = np.array([t])
        for bid in self.physics.models:
            values, quality = self.physics.evaluate(bid, arr, cache=True)
            for k, v in values.items():
                q = quality.get(k)
                x = v[0]
                out[k] = None if q is not None and q[0] else (x if isinstance(x, str) else float(x))
        return out

    def rows(self, t: float | None = None) -> list[tuple[str, float, float | str | None, str]]:
        """The snapshot as (point, ts, value, quality) rows, the stores' write_rows form (quality from device
        faults; the telemetry Quality values, so a simulator need not import telemetry)."""
        from simulators.history import QUALITY

        t = self.now() if t is None else t
        out: list[tuple[str, float, float | str | None, str]] = []
        for bid in self.physics.models:
            values, quality = self.physics.evaluate(bid, np.array([t]), cache=True)
            for k, v in values.items():
                q = quality.get(k)
                if q is not None and q[0]:
                    out.append((k, t, None, QUALITY.get(int(q[0]), "bad")))
                else:
                    x = v[0]
                    out.append((k, t, x if isinstance(x, str) else float(x), "good"))
        return out

    # --- faults at run time ---------------------------------------------------------------------------
    @property
    def faults(self) -> list[Fault]:
        return list(self.physics.faults)

    def active_faults(self) -> list[Fault]:
        t = self.now()
        return [f for f in self.physics.faults if f.active(t)]

    def inject(self, kind: str | FaultKind, target: str, duration_s: float | None = None,
               params: dict[str, float] | None = None, start: float | None = None) -> Fault:
        """Start a fault now (or at ``start``); checked against the site like a scenario file's fault.

        "Now" is the start of the current physics step (15 minutes): the physics resolves faults on its grid, so a
        fault dated between two grid points would only show at the next one. Starting it at the step already
        under way makes it visible on the wire at once, which is what a technician injecting it expects.
        """
        spec = FaultSpec(kind=FaultKind(kind), target=target, start="+0s", params=params or {})
        problems = [(f"params.{n}", m, h) for n, m, h in [*param_problems(spec.kind, spec.params),
                                                          *point_param_problems(spec.kind, spec.params, self.site,
                                                                                target)]]
        problems += [("target", m, h) for _, m, h in check_targets(Scenario(name="live", faults=[spec]), self.site)]
        if problems:
            raise SiteError([_problem(*problems[0])])
        begin = self.now() if start is None else start
        t0 = _step_floor(begin) if start is None else start
        end = begin + duration_s if duration_s else math.inf  # the duration counts from the real moment
        with self._lock:
            self._seq += 1
            f = Fault(kind=spec.kind, target=target.strip("/"), start=t0, end=end, params=spec.numbers(),
                      id=f"live-{self._seq}")
            self.physics.set_faults([*self.physics.faults, f])
            self._snap_t = -math.inf
        return f

    def clear(self, fault_id: str | None = None, target: str | None = None, kind: str | None = None) -> list[Fault]:
        """End matching active faults now (at the current physics step, see inject); returns what was cleared."""
        t = self.now()
        end = _step_floor(t)
        cleared, keep = [], []
        for f in self.physics.faults:
            match = f.active(t) and (fault_id is None or f.id == fault_id) and (
                target is None or f.target == target.strip("/")) and (kind is None or f.kind.value == kind)
            if match and (fault_id or target or kind):
                f = Fault(kind=f.kind, target=f.target, start=f.start, end=max(end, f.start), params=f.params, id=f.id)
                cleared.append(f)
            keep.append(f)
        if cleared:
            with self._lock:
                self.physics.set_faults(keep)
                self._snap_t = -math.inf
        return cleared

    def describe_faults(self) -> list[dict]:
        t = self.now()
        return [{"id": f.id, "kind": f.kind.value, "target": f.target, "start": f.start,
                 "end": None if math.isinf(f.end) else f.end, "active": f.active(t),
                 "family": KINDS[f.kind].family, "rule": KINDS[f.kind].rule} for f in self.physics.faults]


def _problem(field: str, msg: str, hint: str) -> Problem:
    """A live injection's problem: no file or line, the field it is about."""
    return Problem(file="(live fault)", line=None, field=field, message=msg, hint=hint)
