"""Measured savings, IPMVP option C, defined once for `retrofit savings`, the subsidy check (which judges the
recorded result), the dashboard's savings view and the API's ``/savings``.

One definition of:
- the periods: the baseline is the 365 days before the building's retrofit date, the reporting period the
  365 days from it (or up to yesterday while that year is still running), unless the caller gives both;
- the energy: daily DELTA of the whole-building kWh counter (sub-item ``total``), aggregated in the store;
- the outdoor temperature: daily mean of the building's own outdoor air temperature sensor, else of another
  building's in the district (same weather), and the result says which (``TemperatureSource``);
- the occupancy term: occupied hours per day from the building's schedule, so holidays and make-up workdays
  count as they were worked;
- model selection and the ASHRAE Guideline 14 checks: ``buildings.savings.fit_baseline`` / ``measure_savings``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from buildings.access import Unavailable
from buildings.savings import (
    MIN_BASELINE_DAYS,
    BaselineError,
    DailySeries,
    SavingsResult,
    fit_baseline,
    measure_savings,
)
from buildings.subsidy.messages import Msg
from telemetry.store import Agg, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from buildings.site import Site
    from insight.scope import Scope
    from telemetry.store import Store

Period = tuple[dt.date, dt.date]
OAT_BRICK = "Outside_Air_Temperature_Sensor"
YEAR = dt.timedelta(days=365)


class TemperatureSource(StrEnum):
    """Whose outdoor air temperature the baseline was fitted on."""

    BUILDING = "building"  # the building's own sensor
    DISTRICT = "district"  # another building's sensor in the site (same weather)


@dataclass(frozen=True)
class SavingsEvidence:
    """Where each input of the savings came from, for the report and the subsidy file."""

    meter: str
    temperature_point: str
    temperature_source: TemperatureSource

    def as_dict(self) -> dict[str, str]:
        return {"energy": f"daily DELTA of {self.meter}",
                "temperature": f"daily mean of {self.temperature_point} ({self.temperature_source} sensor)",
                "temperature_source": str(self.temperature_source),
                "occupancy": "occupied hours per day from the building's schedule (holidays, make-up workdays)"}


@dataclass(frozen=True)
class MeasuredSavings:
    """The savings of one building over one reporting period, with the baseline's daily prediction."""

    building_id: str
    result: SavingsResult
    evidence: SavingsEvidence
    dates: tuple[dt.date, ...]  # reporting days with energy and temperature
    predicted: tuple[float, ...]  # adjusted baseline per day, kWh
    actual: tuple[float, ...]  # metered per day, kWh

    @property
    def avoided_kwh(self) -> float:
        return self.result.avoided_kwh

    @property
    def savings_fraction(self) -> float:
        return self.result.savings_fraction

    def as_dict(self) -> dict:
        """The JSON shape of `retrofit savings --json` and the API."""
        return {"building": self.building_id, **self.result.as_dict(), "evidence": self.evidence.as_dict()}


def default_periods(site: Site, building_id: str, today: dt.date) -> tuple[Period, Period]:
    """(baseline, reporting): the year before the retrofit date and the year from it (up to yesterday)."""
    rd = site.building(building_id).building.retrofit_date
    if rd is None:
        raise BaselineError(Msg("savings.no_retrofit_date", {"building": building_id}))
    last = min(rd + YEAR - dt.timedelta(days=1), today - dt.timedelta(days=1))
    if last < rd:
        raise BaselineError(Msg("savings.no_reporting_yet", {"building": building_id, "date": rd, "today": today}))
    return (rd - YEAR, rd - dt.timedelta(days=1)), (rd, last)


def total_meter_point(site: Site, building_id: str) -> str:
    """The building's whole-facility energy counter: a kWh counter with sub-item 'total'."""
    bf = site.building(building_id)
    for _eq, p in bf.points():
        if p.counter and p.subitem == "total" and p.unit == "kWh":
            return f"{building_id}/{p.id}"
    raise LookupError(f"building {building_id} has no whole-building energy counter (a kWh point with "
                      f"subitem: total and counter: true); IPMVP option C needs one")


def outdoor_temp_points(site: Site, building_id: str) -> list[tuple[str, TemperatureSource]]:
    """Outdoor air temperature points: the building's own first, then the district's (same weather)."""
    own = [(k, TemperatureSource.BUILDING) for k, r in site.points.items()
           if r.building.id == building_id and r.point.brick == OAT_BRICK]
    other = [(k, TemperatureSource.DISTRICT) for k, r in site.points.items()
             if r.building.id != building_id and r.point.brick == OAT_BRICK]
    return own + other


def _bounds(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[float, float]:
    start = dt.datetime.combine(first, dt.time(), tz).timestamp()
    return start, dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).timestamp()


def _daily(store: Store, key: str, agg: Agg, first: dt.date, last: dt.date, tz: str) -> np.ndarray:
    """One value per local day of [first, last] (NaN where the store has none), aggregated in the store."""
    zone = ZoneInfo(tz)
    out = np.full((last - first).days + 1, np.nan)
    for ts, v in store.aggregate([key], *_bounds(first, last, zone), 86400, agg, tz=tz).get(key, []):
        i = (dt.datetime.fromtimestamp(ts, zone).date() - first).days
        if 0 <= i < len(out):
            out[i] = v
    return out


def daily_series(store: Store, site: Site, building_id: str, first: dt.date, last: dt.date,
                 temperature: tuple[str, TemperatureSource] | None = None) -> tuple[DailySeries, SavingsEvidence]:
    """Daily energy, mean outdoor temperature and occupied hours of [first, last] (local days; gaps NaN).

    ``temperature`` pins the outdoor point (so the reporting period uses the baseline's); by default the first
    of ``outdoor_temp_points`` with history in the period."""
    b = site.building(building_id).building
    meter = total_meter_point(site, building_id)
    energy = _daily(store, meter, Agg.DELTA, first, last, b.timezone)
    temp, used = None, None
    cands = outdoor_temp_points(site, building_id)
    if temperature:  # the baseline's point first, then the usual order
        cands = [temperature, *(c for c in cands if c != temperature)]
    for cand in cands:
        t = _daily(store, cand[0], Agg.MEAN, first, last, b.timezone)
        if np.isfinite(t).any():
            temp, used = t, cand
            break
    if temp is None or used is None:
        raise LookupError(Msg("savings.no_temperature", {"building": building_id, "first": first, "last": last}))
    days = [first + dt.timedelta(days=i) for i in range(len(energy))]
    occupied = [_occupied_hours(b.schedule.hours_for(d)) for d in days]
    return DailySeries.of(days, energy, temp, occupied), SavingsEvidence(meter, used[0], used[1])


def _occupied_hours(span: tuple[float, float] | None) -> float:
    """Occupied hours of a day: the occupancy term of the baseline (weekends often run shorter hours)."""
    return 0.0 if span is None else max(span[1] - span[0], 0.0)


def measure(store: Store, site: Site, building_id: str, baseline: Period | None = None,
            reporting: Period | None = None, today: dt.date | None = None,
            min_days: int | None = None) -> MeasuredSavings:
    """The one savings function: fit the baseline and measure the reporting period of one building.

    Without periods, ``default_periods`` on ``today`` (the building's local date by default). Raises
    BaselineError (with the reason) when the baseline cannot be used, LookupError when a point is missing."""
    bf = site.building(building_id)
    if baseline is None or reporting is None:
        today = today or dt.datetime.now(ZoneInfo(bf.building.timezone)).date()
        baseline, reporting = default_periods(site, building_id, today)
    rd = bf.building.retrofit_date
    if rd is not None and baseline[0] <= rd <= baseline[1]:
        raise BaselineError(f"the baseline {baseline[0]} to {baseline[1]} contains the retrofit date {rd} of "
                            f"{building_id}; a baseline must be pre-retrofit, end it before {rd}")
    base_s, ev = daily_series(store, site, building_id, *baseline)
    rep_s, _ = daily_series(store, site, building_id, *reporting,
                            temperature=(ev.temperature_point, ev.temperature_source))
    base = fit_baseline(base_s, period=baseline, min_days=MIN_BASELINE_DAYS if min_days is None else min_days)
    result = measure_savings(base, rep_s, period=reporting)
    valid = rep_s.valid()
    predicted = base.model.predict(valid.temp, valid.workday)
    return MeasuredSavings(building_id, result, ev, tuple(d.astype(dt.date) for d in valid.dates),
                           tuple(float(x) for x in predicted), tuple(float(x) for x in valid.energy))


DISTRICT_SENSOR = "a district outdoor air temperature sensor"


def shown_evidence(ev: SavingsEvidence, scope: Scope) -> SavingsEvidence:
    """The evidence as this principal may read it: another owner's building is not named (its sensor is the
    district's weather to them)."""
    if scope.allows(ev.temperature_point.partition("/")[0]):
        return ev
    return dataclasses.replace(ev, temperature_point=DISTRICT_SENSOR)


def measure_for(scope: Scope, building_id: str, baseline: Period | None = None, reporting: Period | None = None,
                today: dt.date | None = None) -> MeasuredSavings:
    """``measure`` for a signed-in principal: the building must be in its scope. The building's meter and the
    outdoor temperature are read from the store itself, because the district fallback is another building's
    weather sensor (weather is not owner data). A missing point or history is a BaselineError with the reason,
    a store failure Unavailable."""
    scope.check(building_id)
    store = scope.raw_store()
    try:
        m = measure(store, scope.site, building_id, baseline, reporting, today=today)
        return dataclasses.replace(m, evidence=shown_evidence(m.evidence, scope))
    except StoreError as exc:
        raise Unavailable(str(exc)) from None
    except LookupError as exc:
        raise BaselineError(exc.args[0] if exc.args and isinstance(exc.args[0], Msg) else
                            str(exc.args[0]) if exc.args else str(exc)) from None
