"""Cheap M&V history for the savings tests: only the two points IPMVP option C reads (the whole-building kWh
counter and the building's outdoor air temperature), hourly, from the simulator's physics, with the retrofit
happening mid-way. Two years of both points of a building is about 35,000 readings."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

from buildings.site import Site
from insight.savings import outdoor_temp_points, total_meter_point
from simulators.points import SitePhysics
from telemetry.reading import Reading
from telemetry.store import Store

TZ = ZoneInfo("Asia/Shanghai")
D = dt.date
# building, baseline (12 months before its retrofit_date), reporting (12 months after): the default periods
CASES = {
    "daping-makerworks": ((D(2024, 10, 15), D(2025, 10, 14)), (D(2025, 10, 15), D(2026, 10, 14))),
    "jiefangbei-tower": ((D(2024, 7, 1), D(2025, 6, 30)), (D(2025, 7, 1), D(2026, 6, 30))),
}
SEED = 0


def ts(d: dt.date) -> float:
    """Local midnight starting day d, epoch seconds."""
    return dt.datetime.combine(d, dt.time(), TZ).timestamp()


def write_history(store: Store, site: Site, ph: SitePhysics, bid: str, first: dt.date, last: dt.date,
                  extra_kwh_per_day: np.ndarray | None = None) -> None:
    """Hourly main-meter counter and outdoor temperature from the physics (only the points M&V needs)."""
    keys = [total_meter_point(site, bid), outdoor_temp_points(site, bid)[0][0]]
    t_all = np.arange(ts(first) - 3600, ts(last + dt.timedelta(days=1)) + 1, 3600.0)
    for c in range(0, len(t_all), 24 * 60):
        t = t_all[c:c + 24 * 60]
        values, _q = ph.evaluate(bid, t)
        counter = values[keys[0]]
        if extra_kwh_per_day is not None:  # a non-routine load switching on and off: a noisy baseline
            day = ((t - t_all[0]) // 86400).astype(int).clip(0, len(extra_kwh_per_day) - 1)
            counter = counter + np.cumsum(extra_kwh_per_day[day] / 24)
        store.write([Reading(keys[0], a, b) for a, b in zip(t.tolist(), counter.tolist(), strict=True)]
                    + [Reading(keys[1], a, b) for a, b in zip(t.tolist(), values[keys[1]].tolist(), strict=True)])
