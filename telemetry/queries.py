"""Query helpers for rules, dashboard and API: energy per meter and per sub-item, intensity, load profile, last values.

They take a Site (to know which points are meters and sub-items, the building's time zone and floor area) and
a Store; the heavy lifting is the store's own aggregate query (counter DELTA or mean power per window). Python
only regroups window results (days into calendar months, hours into hour-of-week), never raw readings.

Energy of a meter: from its cumulative kWh counter (DELTA, counter resets handled) when it has one, else by
integrating its power: mean kW over a window x window hours (exact for regular sampling; a window with gaps
counts its mean over the whole window).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from telemetry.reading import Reading
from telemetry.store import Agg, Store
from telemetry.windows import zone

Period = Literal["hour", "day", "month"]
ENERGY_BRICKS = frozenset({"Electric_Energy_Sensor"})
POWER_BRICKS = frozenset({"Electric_Power_Sensor", "Active_Power_Sensor"})
SUBITEMS = ("total", "hvac", "lighting_sockets", "power", "special")
Series = list[tuple[float, float]]


@dataclass(frozen=True)
class Meter:
    """An electricity meter: an equipment with a kWh counter and/or an active power point."""

    key: str  # "building/equipment"
    building: str
    tz: str
    subitem: str | None
    energy_point: str | None
    power_point: str | None


def meters(site: Any, building: str | None = None) -> list[Meter]:
    """The meters of a site (or one building), from the points' Brick classes, units and sub-item tags."""
    out = []
    for bf in site.files:
        b = bf.building
        if building is not None and b.id != building:
            continue
        for eq in bf.equipment:
            energy = next((p for p in eq.points if p.brick in ENERGY_BRICKS and p.unit == "kWh" and p.counter), None)
            power = next((p for p in eq.points if p.brick in POWER_BRICKS and p.unit == "kW"), None)
            if energy is None and power is None:
                continue
            subitem = (energy.subitem if energy else None) or (power.subitem if power else None)
            out.append(Meter(f"{b.id}/{eq.id}", b.id, b.timezone, subitem,
                             f"{b.id}/{energy.id}" if energy else None, f"{b.id}/{power.id}" if power else None))
    return out


def _window(period: Period) -> int:
    return {"hour": 3600, "day": 86400, "month": 86400}[period]


def energy(store: Store, site: Any, start: float, end: float, period: Period = "day",
           building: str | None = None, only: Iterable[Meter] | None = None) -> dict[str, Series]:
    """kWh per meter per local hour/day/calendar month in [start, end): {meter key: [(window start, kWh)]}."""
    chosen = list(only) if only is not None else meters(site, building)
    window = _window(period)
    out: dict[str, Series] = {m.key: [] for m in chosen}
    by_tz: dict[str, list[Meter]] = defaultdict(list)
    for m in chosen:
        by_tz[m.tz].append(m)
    for tz, group in by_tz.items():
        counters = [m for m in group if m.energy_point]
        powered = [m for m in group if not m.energy_point and m.power_point]
        if counters:
            res = store.aggregate([m.energy_point for m in counters], start, end, window, Agg.DELTA, tz=tz)  # type: ignore[misc]
            for m in counters:
                out[m.key] = res.get(m.energy_point, [])  # type: ignore[arg-type]
        if powered:
            res = store.aggregate([m.power_point for m in powered], start, end, window, Agg.MEAN, tz=tz)  # type: ignore[misc]
            for m in powered:
                out[m.key] = [(t, kw * window / 3600.0) for t, kw in res.get(m.power_point, [])]  # type: ignore[arg-type]
        if period == "month":
            for m in group:
                out[m.key] = _by_month(out[m.key], tz)
    return out


def _by_month(daily: Series, tz: str) -> Series:
    """Sum daily windows into local calendar months (window start = local midnight of the 1st)."""
    months: dict[float, float] = {}
    z = zone(tz)
    for t, v in daily:
        local = dt.datetime.fromtimestamp(t, z)
        key = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        months[key] = months.get(key, 0.0) + v
    return sorted(months.items())


def _sum_series(series: Iterable[Series]) -> Series:
    acc: dict[float, float] = defaultdict(float)
    for s in series:
        for t, v in s:
            acc[t] += v
    return sorted(acc.items())


def energy_by_subitem(store: Store, site: Any, building: str, start: float, end: float,
                      period: Period = "day") -> dict[str, Series]:
    """kWh per sub-item category (分项: total, hvac, lighting_sockets, power, special) per window.

    "total" is the building's main meter(s) when it has any, else the sum of the sub-item meters.
    Meters without a sub-item tag are left out (they are not part of the sub-item metering).
    """
    ms = [m for m in meters(site, building) if m.subitem]
    per_meter = energy(store, site, start, end, period, only=ms)
    out: dict[str, Series] = {}
    for cat in SUBITEMS:
        group = [per_meter[m.key] for m in ms if m.subitem == cat]
        if group:
            out[cat] = _sum_series(group)
    if "total" not in out:
        parts = [s for cat, s in out.items() if cat != "total"]
        if parts:
            out["total"] = _sum_series(parts)
    return out


def building_energy(store: Store, site: Any, building: str, start: float, end: float,
                    period: Period = "day") -> Series:
    """The building's total kWh per window: main (total) meters, else the sum of sub-item meters, else all."""
    subs = energy_by_subitem(store, site, building, start, end, period)
    if "total" in subs:
        return subs["total"]
    return _sum_series(energy(store, site, start, end, period, building=building).values())


@dataclass(frozen=True)
class Intensity:
    """Energy use intensity of a building over a period, annualised."""

    building: str
    kwh: float
    floor_area_m2: float
    days: float
    covered_days: int  # days that had metered energy
    kwh_per_m2_year: float


def energy_use_intensity(store: Store, site: Any, building: str, start: float, end: float) -> Intensity:
    """kWh per m2 of gross floor area per year (GB/T 51161 compares against this), from [start, end).

    Annualised over the days that had metered energy, so a meter connected mid-period does not dilute it.
    """
    b = site.building(building).building
    daily = building_energy(store, site, building, start, end, "day")
    kwh = sum(v for _, v in daily)
    covered = len(daily)
    days = (end - start) / 86400.0
    per_year = kwh / b.gross_floor_area_m2 * (365.0 / covered) if covered else 0.0
    return Intensity(building, kwh, b.gross_floor_area_m2, days, covered, per_year)


def load_profile(store: Store, site: Any, building: str, start: float, end: float) -> list[float | None]:
    """Mean building load (kW) by local hour of week: index = weekday * 24 + hour (Monday 00:00 = 0).

    From hourly energy (kWh in one hour = mean kW); None for an hour of week with no data.
    """
    tz = site.building(building).building.timezone
    hourly = building_energy(store, site, building, start, end, "hour")
    sums, counts = [0.0] * 168, [0] * 168
    z = zone(tz)
    for t, kwh in hourly:
        local = dt.datetime.fromtimestamp(t, z)
        i = local.weekday() * 24 + local.hour
        sums[i] += kwh
        counts[i] += 1
    return [sums[i] / counts[i] if counts[i] else None for i in range(168)]


@dataclass(frozen=True)
class LastValue:
    """The latest reading of a point with what a page needs to show it."""

    key: str
    equipment: str
    name: str
    name_zh: str | None
    brick: str
    unit: str
    reading: Reading | None
    age_s: float | None


def last_values(store: Store, site: Any, building: str, now: float | None = None) -> list[LastValue]:
    """Every point of a building with its latest reading (None when never read), in site-file order."""
    import time

    now = time.time() if now is None else now
    latest = store.latest(building=building)
    out = []
    for key, ref in site.points.items():
        if ref.building.id != building:
            continue
        r = latest.get(key)
        out.append(LastValue(key, ref.equipment.id, ref.point.name, ref.point.name_zh, ref.point.brick,
                             ref.point.unit, r, now - r.ts if r else None))
    return out
