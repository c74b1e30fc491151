"""Buildings, their owners (masked), Brick equipment and points, the Brick model, and the resource catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from api import catalogue as cat
from api import exports, model, pii
from api.deps import ERRORS, ID, V1, Ctx, Limit, Offset, Sc, Who, building_file, page
from buildings.site import BuildingFile
from insight.scope import Scope

router = APIRouter(prefix=V1, responses=ERRORS)


def building_view(sc: Scope, bf: BuildingFile) -> dict[str, Any]:
    """A building as the API shows it (no owner rows)."""
    b = bf.building
    return {
        "id": b.id, "code": exports.building_code(sc.site, b.id), "name_zh": b.name.zh, "name_en": b.name.en,
        "address": b.address, "district": b.district, "district_code": b.district_code, "use": b.use.value,
        "year_built": b.year_built, "gross_floor_area_m2": b.gross_floor_area_m2,
        "floors_above": b.floors_above, "floors_below": b.floors_below, "lat": b.lat, "lon": b.lon,
        "timezone": b.timezone, "brick": "brick:Building", "tags": model.building_tags(bf),
        "retrofit_date": b.retrofit_date.isoformat() if b.retrofit_date else None,
        "equipment_count": len(bf.equipment), "point_count": sum(len(e.points) for e in bf.equipment)}


@router.get("/buildings", tags=["buildings"])
def list_buildings(sc: Sc, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """The buildings this token may read."""
    return page([building_view(sc, bf) for bf in sc.buildings()], limit, offset)


@router.get("/buildings/{building_id}", tags=["buildings"])
def get_building(building_id: ID, sc: Sc, who: Who, ctx: Ctx) -> dict[str, Any]:
    """One building with its owner rows (personal fields masked unless the token holds the pii right)."""
    bf = building_file(sc, building_id)
    return {**building_view(sc, bf), "owners": pii.owners_of(bf.building, ctx.engine, who.may_see_pii)}


@router.get("/buildings/{building_id}/owners", tags=["buildings"])
def get_owners(building_id: ID, sc: Sc, who: Who, ctx: Ctx) -> dict[str, Any]:
    """Owner rows, shares and contact persons; masked unless a district token with the pii right."""
    bf = building_file(sc, building_id)
    return {"building": building_id, "masked": not who.may_see_pii,
            "owners": pii.owners_of(bf.building, ctx.engine, who.may_see_pii)}


@router.get("/buildings/{building_id}/equipment", tags=["model"])
def list_equipment(building_id: ID, sc: Sc, limit: Limit = 100, offset: Offset = 0,
                   points: bool = Query(True, description="include each equipment's points")) -> dict[str, Any]:
    """Equipment with Brick classes and Haystack-style tags (and their points)."""
    bf = building_file(sc, building_id)
    return page([model.equipment_view(bf, eq, points) for eq in bf.equipment], limit, offset)


@router.get("/buildings/{building_id}/points", tags=["model"])
def list_points(building_id: ID, sc: Sc, limit: Limit = 100, offset: Offset = 0,
                brick: str | None = Query(None, max_length=80, description="only this Brick class"),
                ) -> dict[str, Any]:
    """Points with Brick class, unit and tags."""
    bf = building_file(sc, building_id)
    items = [model.point_view(bf, eq, p) for eq in bf.equipment for p in eq.points
             if brick is None or p.brick == brick.removeprefix("brick:")]
    return page(items, limit, offset)


@router.get("/buildings/{building_id}/brick.ttl", tags=["model"], response_class=PlainTextResponse)
def brick_ttl(building_id: ID, sc: Sc) -> Response:
    """The building's Brick model as Turtle."""
    bf = building_file(sc, building_id)
    return Response(model.brick_turtle(bf), media_type="text/turtle; charset=utf-8")


@router.get("/catalogue", tags=["catalogue"])
def catalogue(who: Who, ctx: Ctx) -> dict[str, Any]:
    """Every dataset the district shares: fields and units, update interval, owner, sensitivity, readers."""
    return {"datasets": cat.as_dicts(ctx.site)}
