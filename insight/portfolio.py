"""The portfolio list (read model): each visible building with its size, owners, energy use intensity, active
alarms by severity and retrofit state, plus what could not be read. The page draws it; nothing here knows
Streamlit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from buildings.access import Unavailable
from insight import retrofit as records
from rules.model import Severity
from telemetry import queries

if TYPE_CHECKING:  # pragma: no cover
    from insight.scope import Scope

DAY = 86400
ACTIVE = ("raised", "acknowledged")


@dataclass(frozen=True)
class Intensity:
    """Energy use intensity over the last 365 days, annualised over the days with data."""

    kwh_per_m2_year: float | None
    covered_days: int


@dataclass(frozen=True)
class PortfolioRow:
    building_id: str
    name: records.Names
    year_built: int
    area_m2: float
    owners: int
    eui: Intensity
    alarms: dict[Severity, int]  # active (raised or acknowledged) alarms by severity
    status: records.BuildingRecordStatus | None  # None: no project recorded
    lat: float
    lon: float


@dataclass(frozen=True)
class Portfolio:
    rows: tuple[PortfolioRow, ...]
    problems: tuple[str, ...]  # a missing piece (records, alarms): the rest is shown
    store_problem: str | None  # the telemetry store could not be read: no EUI

    @property
    def active_alarms(self) -> int:
        return sum(sum(r.alarms.values()) for r in self.rows)


def total_meters(sc: Scope, building_id: str) -> list[queries.Meter]:
    """The whole-building meters: sub-item "total", else the sub-item meters that partition the load (the rule of
    telemetry.queries.energy_by_subitem), else every meter. Only these are queried for totals and EUI, not every
    sub-item meter: on InfluxDB a year of daily deltas costs per meter."""
    sc.check(building_id)
    ms = queries.meters(sc.visible_site, building_id)
    tagged = [m for m in ms if m.subitem]
    return ([m for m in tagged if m.subitem == "total"] or [m for m in tagged if m.subitem != "total"]
            or ms)


def summed(per_meter: dict[str, list[tuple[float, float]]], meters: list[queries.Meter]) -> dict[float, float]:
    """Window start -> kWh summed over the meters."""
    acc: dict[float, float] = {}
    for m in meters:
        for ts, kwh in per_meter.get(m.key, []):
            acc[ts] = acc.get(ts, 0.0) + kwh
    return acc


def portfolio_eui(sc: Scope, now: float) -> dict[str, Intensity]:
    """EUI of every visible building in one store query (each building's total_meters), daily energy over the
    last 365 days, annualised over the days with data like telemetry.queries.energy_use_intensity."""
    by_building = {bf.building.id: total_meters(sc, bf.building.id) for bf in sc.buildings()}
    chosen = [m for ms in by_building.values() for m in ms]
    per_meter = queries.energy(sc.store_view(), sc.visible_site, now - 365 * DAY, now, "day", only=chosen)
    out: dict[str, Intensity] = {}
    for bf in sc.buildings():
        b = bf.building
        days = summed(per_meter, by_building[b.id])
        covered = len(days)
        out[b.id] = Intensity((sum(days.values()) / b.gross_floor_area_m2 * 365.0 / covered) if covered else None,
                              covered)
    return out


def active_alarm_counts(sc: Scope) -> dict[str, dict[Severity, int]]:
    """Building id -> active alarms by severity."""
    out: dict[str, dict[Severity, int]] = {}
    for a in sc.alarms(state=list(ACTIVE), limit=100_000):
        counts = out.setdefault(a.building, {})
        sev = Severity(a.severity)
        counts[sev] = counts.get(sev, 0) + 1
    return out


def portfolio(sc: Scope, now: float) -> Portfolio:
    """The visible buildings' rows; a piece that is unavailable is named in ``problems`` and left empty."""
    problems: list[str] = []
    alarms: dict[str, dict[Severity, int]] = {}
    status: dict[str, records.BuildingRecordStatus] = {}
    euis: dict[str, Intensity] = {}
    store_problem = None
    try:
        alarms = active_alarm_counts(sc)
    except Unavailable as exc:
        problems.append(str(exc))
    try:
        status = records.records_status(sc)
    except Unavailable as exc:
        problems.append(str(exc))
    try:
        euis = portfolio_eui(sc, now)
    except Unavailable as exc:
        store_problem = str(exc)
    rows = tuple(PortfolioRow(
        building_id=b.id, name=records.Names(b.name.zh, b.name.en), year_built=b.year_built,
        area_m2=b.gross_floor_area_m2, owners=sum(o.count for o in b.owners),
        eui=euis.get(b.id, Intensity(None, 0)), alarms=alarms.get(b.id, {}), status=status.get(b.id),
        lat=b.lat, lon=b.lon) for b in (f.building for f in sc.buildings()))
    return Portfolio(rows, tuple(problems), store_problem)
