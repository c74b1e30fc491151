"""Energy figures for the pages: telemetry.queries (the one place that knows meters, sub-items, EUI and load
profiles) run against the user's ScopedStore and visible site, reshaped into pandas for Plotly.

The store does the heavy lifting (counter deltas per local hour or day); these functions only reshape a few
hundred or thousand aggregate values.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd

from dashboard.scope import Scope
from insight.portfolio import summed, total_meters
from telemetry import queries

if TYPE_CHECKING:  # pragma: no cover
    from insight.savings import MeasuredSavings

DAY = 86400
HOUR = 3600


def _to_series(points: list[tuple[float, float]], tz: str) -> pd.Series:
    if not points:
        return pd.Series(dtype=float)
    s = pd.Series(dict(points), dtype=float).sort_index()
    s.index = pd.to_datetime(s.index, unit="s", utc=True).tz_convert(ZoneInfo(tz))
    return s


def has_meters(sc: Scope, building_id: str) -> bool:
    sc.check(building_id)
    return bool(queries.meters(sc.visible_site, building_id))


def energy(sc: Scope, building_id: str, start: float, end: float, window_s: int = DAY,
           subitem: str = "total") -> pd.Series:
    """kWh per local hour or day of the building's total (or one sub-item)."""
    b = sc.building(building_id).building
    period = "hour" if window_s == HOUR else "day"
    if subitem == "total":
        ms = total_meters(sc, building_id)
        per_meter = queries.energy(sc.store_view(), sc.visible_site, start, end, period, only=ms)
        data = sorted(summed(per_meter, ms).items())
    else:
        data = queries.energy_by_subitem(sc.store_view(), sc.visible_site, building_id, start, end,
                                         period).get(subitem, [])
    return _to_series(data, b.timezone)


def subitem_totals(sc: Scope, building_id: str, start: float, end: float) -> dict[str, float]:
    """kWh per sub-item (分项) over [start, end), total excluded."""
    subs = queries.energy_by_subitem(sc.store_view(), sc.visible_site, building_id, start, end, "day")
    return {k: sum(v for _, v in s) for k, s in subs.items() if k != "total"}


def eui(sc: Scope, building_id: str, now: float) -> tuple[float | None, int]:
    """(kWh per m2 per year, days with data) over the last 365 days, annualised over the covered days like
    telemetry.queries.energy_use_intensity (the same query as the energy page's daily chart: one cache entry)."""
    daily = energy(sc, building_id, now - 365 * DAY, now, DAY)
    covered = int(daily.count())
    area = sc.building(building_id).building.gross_floor_area_m2
    return ((float(daily.sum()) / area * 365.0 / covered) if covered else None), covered


def monthly(daily: pd.Series) -> pd.Series:
    """Monthly kWh from daily kWh (local months)."""
    if daily.empty:
        return daily
    return daily.groupby(daily.index.strftime("%Y-%m")).sum()


def hour_of_week(sc: Scope, building_id: str, start: float, end: float) -> pd.DataFrame:
    """Mean kW per hour of the week (rows Monday..Sunday, columns hour 0-23)."""
    sc.check(building_id)
    prof = queries.load_profile(sc.store_view(), sc.visible_site, building_id, start, end)
    if all(v is None for v in prof):
        return pd.DataFrame()
    return pd.DataFrame([prof[d * 24:(d + 1) * 24] for d in range(7)], index=range(7), columns=range(24),
                        dtype=float)


def load_profile(how: pd.DataFrame) -> pd.DataFrame:
    """Mean kW by hour of day for working days (Mon-Fri) and weekends, from the hour-of-week table."""
    if how.empty:
        return how
    return pd.DataFrame({False: how.loc[0:4].mean(), True: how.loc[5:6].mean()})


def compare_periods(daily: pd.Series, days: int, today: dt.date) -> tuple[float, float]:
    """(kWh in the last `days` full days, kWh in the `days` before them)."""
    if daily.empty:
        return 0.0, 0.0
    dates = daily.index.date
    this_from, prev_from = today - dt.timedelta(days=days), today - dt.timedelta(days=2 * days)
    this = float(daily[(dates >= this_from) & (dates < today)].sum())
    prev = float(daily[(dates >= prev_from) & (dates < this_from)].sum())
    return this, prev


def gbt51161_limits(use: str, cls: str | None = None) -> tuple[float, float, str]:
    """(constraint, leading, class) of GB/T 51161 for a building, from the shared policy data
    (buildings/policies/_defaults.yaml), by its class or else the default class of its use."""
    from buildings.subsidy.defaults import load_defaults

    g = load_defaults().gbt51161
    cls = cls or g.default_class_by_use.get(use, "B_commercial_office")
    lim = g.limits(cls) or g.limits("B_commercial_office")
    assert lim is not None
    return lim[0], lim[1], cls


def measured_savings(sc: Scope, building_id: str, now: float) -> MeasuredSavings:
    """IPMVP option C savings of the year after the retrofit: the one definition (insight.savings) that
    `retrofit savings`, the subsidy check and the API use. Raises buildings.savings.BaselineError with the
    reason when it cannot."""
    from insight.savings import measure_for  # scipy: loaded by the savings tab, not by every page

    tz = ZoneInfo(sc.building(building_id).building.timezone)
    return measure_for(sc, building_id, today=dt.datetime.fromtimestamp(now, tz).date())
