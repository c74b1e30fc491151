"""The history generator: months of simulated readings for a site, fast, straight into a store.

``generate_rows`` yields batches of (point, ts, value, quality) rows for [start, end) at a fixed step (15 minutes
by default), computed with the same physics, faults and retrofit as the live simulator. ``backfill`` writes them
into the store it is given through the store's ``write_rows``. Rows, not telemetry Readings: a simulator imports
buildings only (DESIGN.md); ``retrofit.history.generate`` turns them into Readings for in-memory replays.

Speed: the physics is vectorised over days (simulators/physics.py), so the cost is dominated by the store; see
bench/simulators.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from buildings.site import Site
from simulators.faults import Fault, load_scenario
from simulators.physics import STEP
from simulators.points import Q_BAD, Q_COMM, SitePhysics
from simulators.weather import DAY

if TYPE_CHECKING:  # a type hint only: the store is passed in, simulators never import telemetry
    from telemetry.store import Store


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
                  retrofit: bool = True, physics: SitePhysics | None = None,
                  sort: bool = False) -> Iterator[list[Row]]:
    """Batches of (point, ts, value, quality) rows for [start, end) every ``step_s`` seconds (epoch-aligned).

    One batch per chunk of ``chunk_days`` days per building; ``sort=True`` yields one batch per chunk of all
    buildings, ordered by time (for replaying through a rules engine in event-time order).
    """
    ph = physics or SitePhysics(site, seed=seed, faults=faults, retrofit=retrofit)
    n_b = len(buildings or site.files)
    chunk: list[Row] = []
    for i, (bid, sel) in enumerate(_chunks(site, start, end, step_s, chunk_days, buildings)):
        chunk.extend(_rows(ph, bid, sel))
        if not sort or (i + 1) % n_b == 0:
            if sort:
                chunk.sort(key=lambda r: r[1])
            yield chunk
            chunk = []


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


QUALITY = {Q_COMM: "comm-failure", Q_BAD: "bad"}  # telemetry Quality values, by simulator code


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
            extend((key, a, b, "good") if c == 0 else (key, a, None, QUALITY[c])
                   for a, b, c in zip(ts, vals, q.tolist(), strict=True))
    return out


def backfill(site: Site, store: Store, start: float, end: float, step_s: float = STEP, seed: int = 0,
             faults: list[Fault] | None = None, batch: int | None = None,
             progress: Callable[[int, float], None] | None = None,
             buildings: list[str] | None = None) -> BackfillStats:
    """Write the simulated history of [start, end) into ``store`` (a telemetry Store) in large batches.

    Uses the store's ``write_rows`` (tuples, no Reading objects; both telemetry stores have it), in batches of the
    store's ``preferred_batch`` (50,000 for the embedded store, 5,000 for InfluxDB) unless ``batch`` is given.
    ``progress(n_written, sim_time_reached)`` is called after every store write.
    """
    t0 = time.perf_counter()
    if not callable(getattr(store, "write_rows", None)):
        raise TypeError(f"backfill writes through the store's write_rows; {type(store).__name__} has none "
                        "(use telemetry's EmbeddedStore or InfluxStore)")
    batch = batch or int(getattr(store, "preferred_batch", 50_000))

    def write(rows: list[Row]) -> None:
        store.write_rows(rows)

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
