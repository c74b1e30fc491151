"""Simulated history as telemetry Readings, for in-memory replays (rules tests, benches, `retrofit rules replay`).

The simulators produce rows (point, ts, value, quality) and import buildings only; turning rows into Readings is
wiring, so it lives here in the composition root.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from simulators.history import generate_rows
from telemetry.reading import Quality, Reading


def generate(site: Any, start: float, end: float, **kwargs: Any) -> Iterator[list[Reading]]:
    """Batches of Readings for [start, end): ``simulators.history.generate_rows`` (same arguments: step_s, seed,
    faults, chunk_days, buildings, sort, retrofit, physics), each row made a Reading."""
    for rows in generate_rows(site, start, end, **kwargs):
        yield [Reading(p, ts, v, Quality(q)) for p, ts, v, q in rows]
