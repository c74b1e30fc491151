"""Shared test data helpers: a recent local midnight, so data stays inside InfluxDB's raw retention."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

SH = ZoneInfo("Asia/Shanghai")


def recent_midnight(days_ago: int = 14) -> float:
    """UTC epoch of a Chongqing local midnight about days_ago days back (a whole hour in UTC too)."""
    day = dt.datetime.fromtimestamp(time.time(), SH).date() - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, tzinfo=SH).timestamp()


T0 = recent_midnight()
