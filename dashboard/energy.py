"""Energy figures for the pages, built only from store-side aggregates fetched through the Scope.

The store does the heavy lifting (counter deltas per local day or hour, mean power per hour); these functions
only reshape a few hundred or thousand aggregate values with pandas.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from dashboard.scope import POWER_BRICKS, Scope
from telemetry.store import Agg

DAY = 86400
HOUR = 3600
# GB/T 51161-2016 office non-heating EUI, hot-summer-cold-winter zone (Chongqing), kWh/(m2 a):
# (constraint, leading). Recalled values, marked [R] in the policy notes: check against Table 5.2.1.
GBT51161_HSCW: dict[str, tuple[float, float]] = {
    "office": (110.0, 80.0),  # B class commercial office (sealed, central AC): most old Yuzhong towers
    "mixed": (110.0, 80.0),
    "converted_industrial": (85.0, 70.0),  # A class commercial office
    "retail": (110.0, 80.0),
    "hotel": (110.0, 80.0),
}


def _series(points: dict[str, list[tuple[float, float]]], tz: str) -> pd.Series:
    """Sum several points' (window start, value) lists into one series indexed by local time."""
    frames = [pd.Series(dict(v)) for v in points.values() if v]
    if not frames:
        return pd.Series(dtype=float)
    s = pd.concat(frames, axis=1).sum(axis=1, min_count=1).sort_index()
    s.index = pd.to_datetime(s.index, unit="s", utc=True).tz_convert(ZoneInfo(tz))
    return s


def energy(sc: Scope, building_id: str, start: float, end: float, window_s: int,
           subitem: str = "total") -> pd.Series:
    """kWh per window (local-time aligned) of a building's total (or one sub-item's) meters."""
    bf = sc.building(building_id)
    refs = sc.energy_points(building_id).get(subitem, [])
    if not refs:
        return pd.Series(dtype=float)
    tz = bf.building.timezone
    return _series(sc.aggregate([r.key for r in refs], start, end, window_s, Agg.DELTA, tz), tz)


def subitem_totals(sc: Scope, building_id: str, start: float, end: float) -> dict[str, float]:
    """kWh per sub-item over [start, end) (daily deltas summed)."""
    out: dict[str, float] = {}
    for sub, refs in sc.energy_points(building_id).items():
        if sub == "total" or not refs:
            continue
        s = energy(sc, building_id, start, end, DAY, sub)
        out[sub] = float(s.sum()) if len(s) else 0.0
    return out


def eui(sc: Scope, building_id: str, now: float) -> tuple[float | None, int]:
    """(kWh per m2 per year, days of data) over the last 365 days; annualised when there is less history."""
    bf = sc.building(building_id)
    daily = energy(sc, building_id, now - 365 * DAY, now, DAY)
    days = int(daily.count())
    if days == 0:
        return None, 0
    return float(daily.sum()) / days * 365.0 / bf.building.gross_floor_area_m2, days


def monthly(daily: pd.Series) -> pd.Series:
    """Monthly kWh from daily kWh (local months)."""
    if daily.empty:
        return daily
    return daily.groupby(daily.index.strftime("%Y-%m")).sum()


def hour_of_week(hourly: pd.Series) -> pd.DataFrame:
    """Mean kWh per hour of the week: rows weekday 0-6 (Monday first), columns hour 0-23."""
    if hourly.empty:
        return pd.DataFrame()
    df = pd.DataFrame({"v": hourly.values, "wd": hourly.index.day_of_week, "h": hourly.index.hour})
    return df.pivot_table(index="wd", columns="h", values="v", aggfunc="mean").reindex(index=range(7),
                                                                                       columns=range(24))


def load_profile(sc: Scope, building_id: str, start: float, end: float) -> pd.DataFrame:
    """Mean power (kW) by local hour of day, split into working days and weekends.

    From the building's power meters when it has them (mean per hour from the store), otherwise from the
    hourly energy (kWh per hour is mean kW).
    """
    bf = sc.building(building_id)
    tz = bf.building.timezone
    total = {r.key for r in sc.energy_points(building_id).get("total", [])}
    total_eq = {sc.site.points[k].equipment.id for k in total}
    power = [r.key for r in sc.points(building_id) if r.point.brick in POWER_BRICKS and r.equipment.id in total_eq]
    if power:
        s = _series(sc.aggregate(power, start, end, HOUR, Agg.MEAN, tz), tz)
    else:
        s = energy(sc, building_id, start, end, HOUR)
    if s.empty:
        return pd.DataFrame()
    df = pd.DataFrame({"kw": s.values, "hour": s.index.hour, "weekend": s.index.day_of_week >= 5})
    return df.pivot_table(index="hour", columns="weekend", values="kw", aggfunc="mean").reindex(range(24))


def compare_periods(daily: pd.Series, days: int, today: dt.date) -> tuple[float, float]:
    """(kWh in the last `days` full days, kWh in the `days` before them)."""
    if daily.empty:
        return 0.0, 0.0
    d = daily.copy()
    d.index = d.index.date
    this = sum(float(v) for k, v in d.items() if today - dt.timedelta(days=days) <= k < today)
    prev = sum(float(v) for k, v in d.items() if today - dt.timedelta(days=2 * days) <= k < today
               - dt.timedelta(days=days))
    return this, prev


def gbt51161_limits(use: str) -> tuple[float, float]:
    return GBT51161_HSCW.get(use, GBT51161_HSCW["office"])


def outdoor_temperature(sc: Scope, building_id: str, start: float, end: float) -> pd.Series:
    """Daily mean outdoor air temperature (mean of the building's outdoor sensors), local days."""
    bf = sc.building(building_id)
    keys = [r.key for r in sc.points(building_id) if r.point.brick == "Outside_Air_Temperature_Sensor"]
    if not keys:
        return pd.Series(dtype=float)
    tz = bf.building.timezone
    data = sc.aggregate(keys, start, end, DAY, Agg.MEAN, tz)
    frames = [pd.Series(dict(v)) for v in data.values() if v]
    if not frames:
        return pd.Series(dtype=float)
    s = pd.concat(frames, axis=1).mean(axis=1).sort_index()
    s.index = pd.to_datetime(s.index, unit="s", utc=True).tz_convert(ZoneInfo(tz))
    return s


def measured_savings(sc: Scope, building_id: str, daily: pd.Series, now: float) -> dict:
    """IPMVP option C savings since the retrofit: a baseline fitted on the year before it (buildings.savings),
    applied to the days after it. Raises buildings.savings.BaselineError with the reason when it cannot."""
    from buildings.savings import DailySeries, fit_baseline, measure_savings, workday_flags

    b = sc.building(building_id).building
    if b.retrofit_date is None:
        raise ValueError("no retrofit date")
    temp = outdoor_temperature(sc, building_id, now - 800 * DAY, now)
    if temp.empty:
        from buildings.savings import BaselineError

        raise BaselineError("the building has no outdoor air temperature history")
    df = pd.DataFrame({"e": daily, "t": temp}).dropna()
    df.index = df.index.date
    holidays = list(b.schedule.holidays)
    pre = df[df.index < b.retrofit_date]
    post = df[df.index >= b.retrofit_date]
    base = fit_baseline(DailySeries.of(list(pre.index), pre["e"], pre["t"], workday_flags(list(pre.index), holidays)),
                        period=(b.retrofit_date - dt.timedelta(days=365), b.retrofit_date - dt.timedelta(days=1)))
    rep = DailySeries.of(list(post.index), post["e"], post["t"], workday_flags(list(post.index), holidays))
    res = measure_savings(base, rep)
    predicted = base.model.predict(rep.temp, rep.workday)
    return {"savings_kwh": res.avoided_kwh, "fraction": res.savings_fraction, "dates": list(post.index),
            "baseline": list(predicted), "actual": list(post["e"]), "verdict": res.verdict,
            "cv_rmse": base.stats.cv_rmse}
