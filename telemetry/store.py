"""The store interface every telemetry store implements (InfluxDB, embedded SQLite).

Times are UTC epoch seconds (floats) at the interface; windows for daily/monthly aggregates align to the
building's local midnight via ``tz``. Aggregates are computed by the store's own query engine, never by
pulling raw points into Python.

Optional extras an implementation may offer (both of ours do; the durable buffer uses them when present):
``write_rows(rows)`` takes ``(point, ts, value, quality)`` tuples instead of Reading objects (the buffer's
fast path), and ``preferred_batch`` says how many readings per write suit the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

from telemetry.reading import Reading


class Agg(StrEnum):
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    LAST = "last"
    COUNT = "count"
    DELTA = "delta"  # increase of a cumulative counter over the window, counter resets handled


class StoreError(RuntimeError):
    """Base of store errors; messages never contain secrets."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (retry later: the durable buffer keeps the data)."""


class StoreRejected(StoreError):
    """The store refused the batch as malformed (e.g. HTTP 400): do not retry, set it aside."""


class StoreAuthError(StoreError):
    """Credentials were refused: fix the token/password (named by setting, never shown)."""


@runtime_checkable
class Store(Protocol):
    """What collectors, rules, dashboard and API need from a telemetry store."""

    def write(self, readings: Sequence[Reading]) -> None:
        """Store a batch; return only once the store confirmed it; raise a StoreError otherwise."""

    def latest(self, points: Sequence[str] | None = None, building: str | None = None) -> dict[str, Reading]:
        """Last reading per point (of the given points, or of a building's points)."""

    def raw(self, point: str, start: float, end: float, limit: int | None = None) -> list[Reading]:
        """Readings of one point in [start, end), oldest first."""

    def aggregate(self, points: Sequence[str], start: float, end: float, window_s: int, agg: Agg,
                  tz: str = "UTC") -> dict[str, list[tuple[float, float]]]:
        """Per point, (window start, value) for each non-empty window in [start, end)."""

    def series(self, building: str | None = None) -> list[str]:
        """Point keys that have data (of one building, or all)."""

    def count(self, points: Sequence[str] | None = None, start: float | None = None,
              end: float | None = None) -> int:
        """How many readings are stored (for checks and tests)."""

    def close(self) -> None:
        """Release connections."""
