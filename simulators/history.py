"""The history generator: months of simulated readings for a site, fast, straight into a store.

``generate`` yields batches of telemetry Readings for [start, end) at a fixed step (15 minutes by default),
computed with the same physics, faults and retrofit as the live simulator; the rules engine can replay it in
memory without a store. ``backfill`` writes it into any telemetry Store in large batches.

Speed: the physics is vectorised over days (simulators/physics.py), so the cost is dominated by building
Reading objects and by the store; see bench/simulators.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from buildings.site import Site
from simulators.faults import Fault, load_scenario
from simulators.physics import STEP
from simulators.points import Q_COMM, SitePhysics
from simulators.weather import DAY
from telemetry.reading import Quality, Reading


@dataclass
class BackfillStats:
    readings: int
    seconds: float
    points: int
    start: float
    end: float

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


def scenario_faults(path: str | None, site: Site, anchor: float, until: float = math.inf) -> tuple[list[Fault],
                                                                                                    int | None]:
    """Faults of a scenario file (checked against the site), with relative times counted from ``anchor``."""
    if not path:
        return [], None
    sc = load_scenario(path, site)
    return sc.resolve(anchor, {b.id: b.timezone for b in site.buildings}, until), sc.seed


Row = tuple[str, float, "float | str | None", str]  # (point, ts, value, quality): the stores' write_rows form


def generate_rows(site: Site, start: float, end: float, step_s: float = STEP, seed: int = 0,
                  faults: list[Fault] | None = None, chunk_days: int = 7, buildings: list[str] | None = None,
                  retrofit: bool = True, physics: SitePhysics | None = None) -> Iterator[list[Row]]:
    """Like ``generate`` but yields (point, ts, value, quality) tuples: the stores' fast path, no objects."""
    ph = physics or SitePhysics(site, seed=seed, faults=faults, retrofit=retrofit)
    for bid, sel in _chunks(site, start, end, step_s, chunk_days, buildings):
        yield _rows(ph, bid, sel)


def _chunks(site: Site, start: float, end: float, step_s: float, chunk_days: int,
            buildings: list[str] | None) -> Iterator[tuple[str | None, np.ndarray]]:
    """(building, times) per chunk of days; building None marks the end of a chunk of all buildings."""
    bids = buildings or [bf.building.id for bf in site.files]
    first = math.ceil(start / step_s) * step_s
    t_all = np.arange(first, end, step_s)
    if t_all.size == 0:
        return
    span = chunk_days * DAY
    c0 = t_all[0]
    while c0 <= t_all[-1]:
        sel = t_all[(t_all >= c0) & (t_all < c0 + span)]
        c0 += span
        if sel.size:
            for bid in bids:
                yield bid, sel


def generate(site: Site, start: float, end: float, step_s: float = STEP, seed: int = 0,
             faults: list[Fault] | None = None, chunk_days: int = 7, buildings: list[str] | None = None,
             sort: bool = False, retrofit: bool = True,
             physics: SitePhysics | None = None) -> Iterator[list[Reading]]:
    """Batches of Readings for [start, end) every ``step_s`` seconds (aligned to the epoch).

    One batch per chunk of ``chunk_days`` days per building; ``sort=True`` yields one batch per chunk of all
    buildings, ordered by time (for replaying through a rules engine in event-time order).
    """
    ph = physics or SitePhysics(site, seed=seed, faults=faults, retrofit=retrofit)
    n_b = len(buildings or site.files)
    chunk: list[Reading] = []
    for i, (bid, sel) in enumerate(_chunks(site, start, end, step_s, chunk_days, buildings)):
        chunk.extend(_readings(ph, bid, sel))
        if not sort or (i + 1) % n_b == 0:
            if sort:
                chunk.sort(key=lambda r: r.ts)
            yield chunk
            chunk = []


_QUALITY = {Q_COMM: Quality.COMM_FAILURE, 2: Quality.BAD}


def _rows(ph: SitePhysics, bid: str, t: np.ndarray) -> list[Row]:
    values, quality = ph.evaluate(bid, t)
    ts = t.tolist()
    out: list[Row] = []
    extend = out.extend
    for key, arr in values.items():
        q = quality.get(key)
        vals = arr.tolist()
        if q is None:
            extend(zip(repeat(key), ts, vals, repeat("good")))
        else:
            extend((key, a, b, "good") if c == 0 else (key, a, None, _QUALITY[c].value)
                   for a, b, c in zip(ts, vals, q.tolist(), strict=True))
    return out


def _readings(ph: SitePhysics, bid: str, t: np.ndarray) -> list[Reading]:
    return [Reading(p, ts, v, Quality(q)) for p, ts, v, q in _rows(ph, bid, t)]


def backfill(site: Site, store, start: float, end: float, step_s: float = STEP, seed: int = 0,  # noqa: ANN001
             faults: list[Fault] | None = None, batch: int | None = None,
             progress: Callable[[int, float], None] | None = None,
             buildings: list[str] | None = None) -> BackfillStats:
    """Write the simulated history of [start, end) into ``store`` (a telemetry Store) in large batches.

    Uses the store's ``write_rows`` fast path (tuples, no Reading objects) when it has one, in batches of the
    store's ``preferred_batch`` (50,000 for the embedded store, 5,000 for InfluxDB) unless ``batch`` is given.
    ``progress(n_written, sim_time_reached)`` is called after every store write.
    """
    t0 = time.perf_counter()
    fast = callable(getattr(store, "write_rows", None))
    batch = batch or int(getattr(store, "preferred_batch", 50_000))

    def write(rows: list[Row]) -> None:
        if fast:
            store.write_rows(rows)
        else:
            store.write([Reading(p, ts, v, Quality(q)) for p, ts, v, q in rows])

    n = 0
    pending: list[Row] = []
    for chunk in generate_rows(site, start, end, step_s, seed, faults, buildings=buildings):
        pending.extend(chunk)
        while len(pending) >= batch:
            write(pending[:batch])
            n += batch
            reached = pending[batch - 1][1]
            del pending[:batch]
            if progress:
                progress(n, reached)
    if pending:
        write(pending)
        n += len(pending)
        if progress:
            progress(n, end)
    points = len([k for k in site.points if buildings is None or k.split("/")[0] in buildings])
    return BackfillStats(readings=n, seconds=time.perf_counter() - t0, points=points, start=start, end=end)
