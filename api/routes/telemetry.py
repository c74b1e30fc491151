"""Latest values, paged store-side aggregates of one point, sub-item energy exports, and alarms."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import JSONResponse

from api import exports
from api.deps import ERRORS, ID, NOT_FOUND, V1, BuildingQ, Limit, Offset, PointID, Sc, building_file, page
from buildings.access import Can, ScopeDenied
from telemetry.store import Agg
from telemetry.windows import window_start

router = APIRouter(prefix=V1, responses=ERRORS)


class Window(StrEnum):
    m1 = "60"
    m5 = "300"
    m15 = "900"
    h1 = "3600"
    d1 = "86400"


@router.get("/buildings/{building_id}/latest", tags=["telemetry"])
def latest(building_id: ID, sc: Sc, limit: Limit = 1000, offset: Offset = 0) -> dict[str, Any]:
    """The last reading of each point of the building that has one."""
    building_file(sc, building_id)
    rows = sc.latest(building_id)
    items = [{"point": k, "ts": r.ts, "value": r.value, "quality": str(r.quality),
              "unit": sc.site.points[k].point.unit if k in sc.site.points else None}
             for k, r in sorted(rows.items())]
    return page(items, limit, offset)


@router.get("/buildings/{building_id}/points/{point_id}/history", tags=["telemetry"])
def history(building_id: ID, point_id: PointID, sc: Sc,
            start: float | None = Query(None, ge=0, le=4e9, description="UTC epoch s (default end - 1 day)"),
            end: float | None = Query(None, ge=0, le=4e9, description="UTC epoch s (default now)"),
            window: Window = Query(Window.h1, description="window length, seconds"),
            agg: Agg = Query(Agg.MEAN, description="store-side aggregate"),
            limit: int = Query(1000, ge=1, le=5000, description="windows per page")) -> dict[str, Any]:
    """Store-side aggregates of one point, paged by time: follow ``next_start`` for the next page."""
    bf = building_file(sc, building_id)
    key = f"{building_id}/{point_id}"
    if key not in sc.site.points:
        raise ScopeDenied(NOT_FOUND)
    end_ = time.time() if end is None else end
    start_ = end_ - 86400 if start is None else start
    if end_ <= start_:
        raise HTTPException(422, "end must be after start")
    w = int(window.value)
    start_ = window_start(start_, w, bf.building.timezone)  # whole windows only: a page never splits one
    page_end = min(end_, start_ + w * limit)
    series = sc.aggregate([key], start_, page_end, w, agg, bf.building.timezone).get(key, [])
    return {"point": key, "unit": sc.site.points[key].point.unit, "agg": agg.value, "window_s": w,
            "start": start_, "end": page_end, "items": [{"t": t, "v": v} for t, v in series],
            "next_start": page_end if page_end < end_ else None}


@router.get("/buildings/{building_id}/energy", responses={403: {"description": "role"}}, tags=["energy"])
def energy(building_id: ID, sc: Sc,
           start: float = Query(..., ge=0, le=4e9, description="UTC epoch s"),
           end: float = Query(..., ge=0, le=4e9, description="UTC epoch s"),
           resolution: exports.Resolution = Query("1h"), format: str = Query("json", pattern="^(json|csv)$"),
           ) -> Response:
    """Sub-item energy (electricity by sub-item, water, gas) at 15 min or 1 h, as the city export."""
    building_file(sc, building_id)
    if not sc.can(Can.RECORDS):
        raise HTTPException(403, f"{sc.principal.role.value} tokens may not read energy exports")
    w = exports.RESOLUTIONS[resolution]
    if end <= start or (end - start) / w > 10_000:
        raise HTTPException(422, "end must be after start and the period at most 10,000 windows")
    rows = exports.energy_rows(sc.store_view(), sc.site, building_id, start, end, resolution)
    if format == "csv":
        return Response(exports.to_csv(rows), media_type="text/csv; charset=utf-8")
    return JSONResponse(exports.envelope(rows, sc.site, building_id, start, end, resolution))


@router.get("/alarms", tags=["alarms"])
def alarms(sc: Sc, building: BuildingQ = None,
           state: list[str] | None = Query(None, description="raised, acknowledged, cleared"),
           severity: list[str] | None = Query(None), family: list[str] | None = Query(None),
           since: float | None = Query(None, ge=0, le=4e9), limit: Limit = 100,
           offset: Offset = 0,
           include_suppressed: bool = Query(False, description="also alarms suppressed by maintenance or flood "
                                            "control (fields suppressed, flood)")) -> dict[str, Any]:
    """Alarms of the token's buildings, newest first; a grouped alarm (subject '*') lists its points."""
    if building is not None and not sc.allows(building):
        raise ScopeDenied(NOT_FOUND)
    rows = sc.alarms(state=state or None, building=building, family=family, severity=severity, since=since,
                     limit=min(offset + limit + 1, 100_000), include_suppressed=include_suppressed)
    total_known = len(rows)
    out = page([a.as_dict() for a in rows], limit, offset)
    out["total"] = total_known if total_known <= offset + limit else None  # more exist: not counted
    return out
