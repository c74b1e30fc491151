"""Time windows aligned to a building's local clock, shared by the stores and the query helpers.

Why: a "day" of energy is local midnight to local midnight (Asia/Shanghai is UTC+8, so a UTC day would cut
every business day in two). Stores bucket on *local* wall-clock time; these helpers give the UTC offset in
force over a time range and turn a local bucket start back into a UTC instant.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = dt.UTC


@lru_cache(maxsize=64)
def zone(tz: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name (cached: building code paths ask for it on every query)."""
    return ZoneInfo(tz)


def utc_offset_s(tz: str, ts: float) -> int:
    """UTC offset in seconds in force at UTC instant ts (e.g. 28800 for Asia/Shanghai)."""
    off = dt.datetime.fromtimestamp(ts, zone(tz)).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def offset_segments(tz: str, start: float, end: float) -> list[tuple[float, int]]:
    """[(from_ts, offset_s), ...]: the UTC offset over [start, end), one entry per change (DST, law changes).

    Samples every 6 hours and bisects to the second where the offset changes, so a year costs ~1,500
    zoneinfo lookups (a few ms).
    """
    if tz in ("UTC", "Etc/UTC"):
        return [(start, 0)]
    step = 6 * 3600.0
    segments = [(start, utc_offset_s(tz, start))]
    t = start
    while t < end:
        nxt = min(t + step, end)
        off = utc_offset_s(tz, nxt)
        if off != segments[-1][1]:
            lo, hi = t, nxt  # offset at lo is the old one, at hi the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if utc_offset_s(tz, mid) == segments[-1][1]:
                    lo = mid
                else:
                    hi = mid
            segments.append((float(hi), off))
        t = nxt
    return segments


def local_to_utc(local_epoch_s: float, tz: str) -> float:
    """A local wall-clock time written as epoch seconds (as if it were UTC) -> the real UTC instant."""
    naive = dt.datetime.fromtimestamp(local_epoch_s, UTC).replace(tzinfo=None)
    return naive.replace(tzinfo=zone(tz)).timestamp()


def local_midnight(ts: float, tz: str) -> float:
    """UTC instant of the local midnight starting the day that contains ts."""
    local = dt.datetime.fromtimestamp(ts, zone(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_start(ts: float, tz: str) -> float:
    """UTC instant of local midnight on the first day of the month containing ts."""
    local = dt.datetime.fromtimestamp(ts, zone(tz))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def window_start(ts: float, window_s: int, tz: str) -> float:
    """UTC start of the local-time window containing ts (aligned like InfluxDB's GROUP BY time() tz())."""
    if tz in ("UTC", "Etc/UTC"):
        return ts - ts % window_s
    local = ts + utc_offset_s(tz, ts)
    return local_to_utc(local - local % window_s, tz)


def utc_of_local(local_epoch_s: float, segments: list[tuple[float, int]], tz: str) -> float:
    """local_to_utc() using the offsets already known for a range (offset_segments): no zoneinfo call per window.

    Tries each offset in force in the range; falls back to zoneinfo for local times that do not exist or
    exist twice (DST changes).
    """
    if len(segments) == 1:
        return local_epoch_s - segments[0][1]
    for i, (_, off) in enumerate(segments):
        u = local_epoch_s - off
        lo = segments[i][0] if i else float("-inf")
        hi = segments[i + 1][0] if i + 1 < len(segments) else float("inf")
        if lo <= u < hi:
            return u
    return local_to_utc(local_epoch_s, tz)
