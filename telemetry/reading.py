"""The Reading: the one currency between collectors, stores, rules and dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Quality(StrEnum):
    """How far a reading can be trusted. Only GOOD readings may raise or clear an alarm."""

    GOOD = "good"
    STALE = "stale"
    COMM_FAILURE = "comm-failure"
    OUT_OF_RANGE = "out-of-range"
    BAD_CONFIG = "bad-config"
    BAD = "bad"  # the device answered an error for this point, or a NaN / undecodable value


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one point at one time.

    point: the site-wide point key ``"{building_id}/{point_id}"``.
    ts: event time, UTC epoch seconds (float), from the device or the collector's clock.
    value: a float (binary states as 0.0/1.0), a str for string points, or None when there is no value.
    quality: see Quality.
    """

    point: str
    ts: float
    value: float | str | None
    quality: Quality = Quality.GOOD

    @property
    def building(self) -> str:
        return self.point.partition("/")[0]

    @property
    def good(self) -> bool:
        return self.quality is Quality.GOOD and self.value is not None
