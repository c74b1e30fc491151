"""Sub-item energy exports for the municipal energy-monitoring platform (分项能耗), CSV and JSON.

Per building and period: electricity by sub-item (total, lighting_sockets, hvac, power, special), water and gas,
at 15-minute or hourly resolution, one row per (window, item). Item codes follow the 2008 national guideline for
energy-monitoring data of public buildings (分项能耗数据采集技术导则): 01000 electricity total, 01A00 lighting and
sockets, 01B00 HVAC, 01C00 power, 01D00 special, 02000 water, 03000 natural gas. The building code is
``platform_code``-style: the 6-digit district code, the building-type letter (A office, B retail, C hotel,
G mixed, H other) and a 4-digit serial in the district (by building id), unless a deployment maps its own.

Values come from the store's own aggregates (counter DELTA per window; meters with only a power point as mean kW
x window hours), the same rule as telemetry.queries.energy, at any window size (that helper stops at hourly).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from buildings.site import BuildingFile, Site
from telemetry.queries import meters
from telemetry.store import Agg, Store
from telemetry.windows import zone

Resolution = Literal["15min", "1h"]
RESOLUTIONS: dict[str, int] = {"15min": 900, "1h": 3600}
ITEM_CODES = {("electricity", "total"): "01000", ("electricity", "lighting_sockets"): "01A00",
              ("electricity", "hvac"): "01B00", ("electricity", "power"): "01C00",
              ("electricity", "special"): "01D00", ("water", "total"): "02000", ("gas", "total"): "03000"}
UNITS = {"electricity": "kWh", "water": "m3", "gas": "m3"}
TYPE_LETTER = {"office": "A", "retail": "B", "hotel": "C", "mixed": "G", "converted_industrial": "H"}
FIELDS = ("building_code", "building_id", "energy_type", "subitem", "item_code", "period_start", "period_end",
          "resolution", "value", "unit")
MAX_WINDOWS = 200_000


class ExportError(ValueError):
    """An export request that cannot be done; the message says which argument to change."""


@dataclass(frozen=True)
class Row:
    building_code: str
    building_id: str
    energy_type: str
    subitem: str
    item_code: str
    period_start: str
    period_end: str
    resolution: str
    value: float
    unit: str


def building_code(site: Site, building_id: str) -> str:
    """District code + type letter + serial within the district (stable for a given set of building ids)."""
    b = site.building(building_id).building
    same = sorted(f.building.id for f in site.files if f.building.district_code == b.district_code)
    return f"{b.district_code}{TYPE_LETTER.get(b.use.value, 'H')}{same.index(b.id) + 1:04d}"


def _counters(bf: BuildingFile, brick: str) -> list[str]:
    return [f"{bf.building.id}/{p.id}" for _, p in bf.points() if p.brick == brick and p.counter]


Series = dict[tuple[str, str], dict[float, float]]


def _check_period(start: float, end: float, resolution: str) -> int:
    """The window length of the resolution, once the period is known to be exportable (else ExportError)."""
    if resolution not in RESOLUTIONS:
        raise ExportError(f"--resolution {resolution!r}: use 15min or 1h")
    window = RESOLUTIONS[resolution]
    if end <= start:
        raise ExportError("--to must be after --from")
    if (end - start) / window > MAX_WINDOWS:
        raise ExportError(f"{(end - start) / window:,.0f} windows asked; export at most {MAX_WINDOWS:,} at a time")
    return window


def _electricity(series: Series, store: Store, site: Site, building_id: str, start: float, end: float,
                 window: int, tz: str) -> None:
    """kWh per sub-item from the counters (deltas) and power-only meters (mean kW x window); the total as the
    sum of the sub-items when no meter is tagged total."""
    ms = [m for m in meters(site, building_id) if m.subitem]
    counters = [(m.energy_point, m.subitem) for m in ms if m.energy_point and m.subitem]
    powered = [(m.power_point, m.subitem) for m in ms if not m.energy_point and m.power_point and m.subitem]
    for pts, agg, scale in ((counters, Agg.DELTA, 1.0), (powered, Agg.MEAN, window / 3600.0)):
        if not pts:
            continue
        res = store.aggregate([k for k, _ in pts], start, end, window, agg, tz=tz)
        for key, subitem in pts:
            for t, v in res.get(key, []):
                series[("electricity", subitem)][t] += v * scale
    if ("electricity", "total") not in series:
        parts = [s for (kind, _), s in list(series.items()) if kind == "electricity"]
        if parts:
            tot: dict[float, float] = defaultdict(float)
            for part in parts:
                for t, v in part.items():
                    tot[t] += v
            series[("electricity", "total")] = tot


def _utilities(series: Series, store: Store, bf: BuildingFile, start: float, end: float, window: int,
               tz: str) -> None:
    """Water and gas volume per window from their usage counters."""
    for kind, brick in (("water", "Water_Usage_Sensor"), ("gas", "Gas_Usage_Sensor")):
        keys = _counters(bf, brick)
        if keys:
            res = store.aggregate(keys, start, end, window, Agg.DELTA, tz=tz)
            for k in keys:
                for t, v in res.get(k, []):
                    series[(kind, "total")][t] += v


def energy_rows(store: Store, site: Site, building_id: str, start: float, end: float,
                resolution: Resolution = "1h") -> list[Row]:
    """The sub-item rows of one building in [start, end), windows aligned to the building's local clock."""
    window = _check_period(start, end, resolution)
    bf = site.building(building_id)
    tz = bf.building.timezone
    series: Series = defaultdict(lambda: defaultdict(float))
    _electricity(series, store, site, building_id, start, end, window, tz)
    _utilities(series, store, bf, start, end, window, tz)
    code = building_code(site, building_id)
    z = zone(tz)
    rows = []
    order = list(ITEM_CODES)
    for item in sorted(series, key=order.index):
        for t, v in sorted(series[item].items()):
            rows.append(Row(code, building_id, item[0], item[1], ITEM_CODES[item],
                            dt.datetime.fromtimestamp(t, z).isoformat(),
                            dt.datetime.fromtimestamp(t + window, z).isoformat(), resolution, round(v, 4),
                            UNITS[item[0]]))
    rows.sort(key=lambda r: (r.period_start, order.index((r.energy_type, r.subitem))))
    return rows


def to_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    for r in rows:
        w.writerow([getattr(r, f) for f in FIELDS])
    return buf.getvalue()


def to_json(rows: list[Row], site: Site, building_id: str, start: float, end: float, resolution: str) -> str:
    return json.dumps(envelope(rows, site, building_id, start, end, resolution), ensure_ascii=False, indent=1)


def envelope(rows: list[Row], site: Site, building_id: str, start: float, end: float,
             resolution: str) -> dict[str, Any]:
    """The JSON document: building code and period up front, then one record per window and item."""
    b = site.building(building_id).building
    z = zone(b.timezone)
    return {
        "format": "retrofit-subitem-energy/1",
        "building": {"code": building_code(site, building_id), "id": b.id, "name_zh": b.name.zh,
                     "name_en": b.name.en, "district_code": b.district_code, "gross_floor_area_m2":
                     b.gross_floor_area_m2, "timezone": b.timezone},
        "period": {"from": dt.datetime.fromtimestamp(start, z).isoformat(),
                   "to": dt.datetime.fromtimestamp(end, z).isoformat(), "resolution": resolution},
        "records": [{f: getattr(r, f) for f in FIELDS if f not in ("building_code", "building_id", "resolution")}
                    for r in rows],
    }


def file_name(site: Site, building_id: str, start: float, end: float, resolution: str, fmt: str) -> str:
    z = zone(site.building(building_id).building.timezone)
    a = dt.datetime.fromtimestamp(start, z).strftime("%Y%m%dT%H%M")
    b = dt.datetime.fromtimestamp(end, z).strftime("%Y%m%dT%H%M")
    return f"{building_code(site, building_id)}_{building_id}_{a}_{b}_{resolution}.{fmt}"
