"""The one gate between a signed-in user and the data: every page reads buildings, telemetry, alarms and
records through a Scope, never directly.

An owner's Scope holds only the buildings in which that owner has a share (from the site files); every method
that takes a building id, a point key or an alarm checks it against that set and raises ScopeDenied, with the
same message whether the building exists or not (so probing ids reveals nothing). District users see every
building; technicians see every building read-only plus the simulators.

Pieces built by other packages (rules' alarms, the retrofit records) are imported lazily: a missing one raises
Unavailable with a message the page shows, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from buildings.site import BuildingFile, PointRef, Site
from dashboard.auth import Principal, Role
from telemetry.reading import Reading
from telemetry.store import Agg, Store, StoreError


class ScopeDenied(PermissionError):
    """The user may not see (or do) this. The message never says whether the thing exists."""


class Unavailable(RuntimeError):
    """A data source is missing or unreachable; the message is for the page, in plain words."""


class Can(StrEnum):
    """What a role may do, beyond reading its buildings."""

    ACKNOWLEDGE = "acknowledge"
    SIMULATE = "simulate"
    PROGRAMME = "programme"
    RECORDS = "records"  # retrofit projects and subsidies


ROLE_CAN: dict[Role, frozenset[Can]] = {
    Role.OWNER: frozenset({Can.ACKNOWLEDGE, Can.RECORDS}),
    Role.DISTRICT: frozenset({Can.ACKNOWLEDGE, Can.RECORDS, Can.PROGRAMME}),
    Role.TECHNICIAN: frozenset({Can.SIMULATE}),
}

ENERGY_BRICK = "Electric_Energy_Sensor"
POWER_BRICKS = ("Electric_Power_Sensor", "Active_Power_Sensor")


def owner_buildings(site: Site, owner_id: str) -> tuple[str, ...]:
    """Ids of the buildings in which owner_id holds a share."""
    return tuple(f.building.id for f in site.files if any(o.owner == owner_id for o in f.building.owners))


@dataclass
class Scope:
    """What one principal may see, and the only path to the data."""

    principal: Principal
    site: Site
    store: Store | None = None
    store_error: str | None = None
    engine: Any = None  # sqlalchemy Engine of the records database, or None
    store_id: str = ""  # identifies the store in cache keys
    cache: Callable[..., Any] | None = field(default=None, repr=False)  # cached aggregate(store_id, ...)

    # --- who may see what -------------------------------------------------------------------------------
    @cached_property
    def building_ids(self) -> tuple[str, ...]:
        if self.principal.role is Role.OWNER:
            return owner_buildings(self.site, self.principal.owner_id or "")
        return tuple(f.building.id for f in self.site.files)

    def can(self, what: Can) -> bool:
        return what in ROLE_CAN[self.principal.role]

    def require(self, what: Can) -> None:
        if not self.can(what):
            raise ScopeDenied(f"{self.principal.role.value} users may not {what.value}")

    def allows(self, building_id: str) -> bool:
        return building_id in self.building_ids

    def check(self, building_id: str) -> None:
        if not self.allows(building_id):
            raise ScopeDenied("no such building for this user")

    def buildings(self) -> list[BuildingFile]:
        ids = set(self.building_ids)
        return [f for f in self.site.files if f.building.id in ids]

    def building(self, building_id: str) -> BuildingFile:
        self.check(building_id)
        return self.site.building(building_id)

    def points(self, building_id: str) -> list[PointRef]:
        self.check(building_id)
        return [r for r in self.site.points.values() if r.building.id == building_id]

    def check_points(self, keys: Sequence[str]) -> None:
        for k in keys:
            if k not in self.site.points or not self.allows(self.site.points[k].building.id):
                raise ScopeDenied("no such point for this user")

    def energy_points(self, building_id: str) -> dict[str, list[PointRef]]:
        """The building's electricity meters by sub-item; 'total' holds the whole-building meters.

        When no meter is marked total, the sub-item meters together are the total (they partition the load).
        """
        out: dict[str, list[PointRef]] = {}
        for r in self.points(building_id):
            if r.point.brick == ENERGY_BRICK and r.point.unit == "kWh":
                out.setdefault(r.point.subitem or "other", []).append(r)
        if "total" not in out:
            out["total"] = [r for rs in out.values() for r in rs]
        return out

    # --- telemetry -----------------------------------------------------------------------------------------
    def _store(self) -> Store:
        if self.store is None:
            raise Unavailable(self.store_error or "no telemetry store configured")
        return self.store

    def latest(self, building_id: str) -> dict[str, Reading]:
        self.check(building_id)
        try:
            return self._store().latest(building=building_id)
        except StoreError as exc:
            raise Unavailable(str(exc)) from None

    def aggregate(self, keys: Sequence[str], start: float, end: float, window_s: int, agg: Agg,
                  tz: str = "UTC") -> dict[str, list[tuple[float, float]]]:
        """Store-side aggregates of the user's points (cached per store and arguments)."""
        self.check_points(keys)
        store = self._store()
        try:
            if self.cache is not None:
                return self.cache(self.store_id, tuple(sorted(keys)), start, end, window_s, str(agg), tz, store)
            return store.aggregate(list(keys), start, end, window_s, agg, tz)
        except StoreError as exc:
            raise Unavailable(str(exc)) from None

    # --- alarms (rules package) ----------------------------------------------------------------------------
    def _alarms_module(self) -> Any:
        try:
            import rules.alarms as alarms
        except ModuleNotFoundError as exc:
            raise Unavailable(f"alarms ({exc.name})") from None
        if self.engine is None:
            raise Unavailable("records database")
        return alarms

    def alarms(self, active: bool | None = None, building: str | None = None, since: float | None = None,
               limit: int = 500) -> list[Any]:
        """Alarms of the user's buildings (optionally one building), newest first."""
        mod = self._alarms_module()
        ids = [building] if building else list(self.building_ids)
        if building:
            self.check(building)
        if not ids:
            return []
        rows = mod.list_alarms(self.engine, buildings=ids, active=active, since=since, limit=limit)
        return [a for a in rows if self.allows(a.building)]

    def acknowledge(self, alarm_id: int, comment: str) -> Any:
        self.require(Can.ACKNOWLEDGE)
        mod = self._alarms_module()
        alarm = mod.get_alarm(self.engine, alarm_id)
        if alarm is None or not self.allows(alarm.building):
            raise ScopeDenied("no such alarm for this user")
        return mod.acknowledge(self.engine, alarm_id, by=self.principal.username, comment=comment,
                               at=time.time())

    # --- retrofit records (buildings.records) --------------------------------------------------------------
    def _records(self, name: str) -> Any:
        import importlib

        try:
            mod = importlib.import_module(f"buildings.records.{name}")
        except ModuleNotFoundError as exc:
            raise Unavailable(f"retrofit records ({exc.name})") from None
        if self.engine is None:
            raise Unavailable("records database")
        return mod

    def records_status(self) -> dict[str, dict[str, str]]:
        """Per visible building: retrofit stage and subsidy status labels (zh/en)."""
        self._records("portfolio")
        return {}

    def projects(self) -> list[dict[str, Any]]:
        """Retrofit projects of the visible buildings (see pages/retrofit.py for the shape)."""
        self.require(Can.RECORDS)
        self._records("portfolio")
        return []

    def subsidies(self, building_id: str) -> list[dict[str, Any]]:
        self.require(Can.RECORDS)
        self.check(building_id)
        self._records("portfolio")
        return []

    def ranking(self) -> list[dict[str, Any]]:
        self.require(Can.PROGRAMME)
        self._records("portfolio")
        return []
