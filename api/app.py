"""The read-only HTTP API (FastAPI), versioned under /api/v1, OpenAPI at /openapi.json.

Every request: the bearer token is checked (api.tokens; missing, malformed, unknown, revoked or expired -> 401,
one message for all), its per-token rate is enforced (token bucket, 429 with Retry-After), and the request is
appended to the hash-chained audit log (path, method, status, token id: never the token or personal data).
Data is read through the Scope the dashboard also uses (rules.scope), the one gate that knows what a role may
see: a building outside the token's scope is 404 with the same body as a building that does not exist.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api import catalogue as cat
from api import exports, model, pii
from api.evidence import append_audit
from api.tokens import TokenPrincipal, authenticate
from buildings.access import Can, ScopeDenied, Unavailable
from buildings.site import Site
from rules.scope import Scope
from telemetry.store import Agg, Store, StoreError

log = logging.getLogger("api")
NOT_FOUND = "Not Found"
UNAUTHORIZED = "missing, invalid, revoked or expired token"
ID = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="a building id",
                         examples=["jiefangbei-tower"])]
PointID = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="a point id of the building",
                              examples=["ch1-chws"])]
ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": UNAUTHORIZED}, 404: {"description": NOT_FOUND},
                                           429: {"description": "over this token's rate limit"}}


class RateLimiter:
    """A token bucket per API token: ``rate_per_min`` requests a minute, bursts up to that many."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate_per_min: int) -> float:
        """0 when allowed, else the seconds until the next request would be."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(rate_per_min), now))
            tokens = min(float(rate_per_min), tokens + (now - last) * rate_per_min / 60.0)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) * 60.0 / rate_per_min


@dataclass
class ApiContext:
    site: Site
    engine: Engine
    store: Store | None
    store_error: str | None
    limiter: RateLimiter
    alarm_book: Any = None


class Window(StrEnum):
    m1 = "60"
    m5 = "300"
    m15 = "900"
    h1 = "3600"
    d1 = "86400"


def principal(request: Request) -> TokenPrincipal:
    """The token's principal, or 401; then the token's rate limit, or 429."""
    ctx: ApiContext = request.app.state.ctx
    auth = request.headers.get("authorization", "")
    scheme, _, text = auth.partition(" ")
    tp = authenticate(ctx.engine, text if scheme.lower() == "bearer" else None)
    if tp is None:
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    request.state.actor = f"token:{tp.token_id}"
    wait = ctx.limiter.take(tp.token_id, tp.rate_per_min)
    if wait > 0:
        raise HTTPException(429, f"rate limit of {tp.rate_per_min} requests/min exceeded",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return tp


def scope(request: Request, tp: Annotated[TokenPrincipal, Depends(principal)]) -> Scope:
    """The shared Scope (rules.scope) for the token's principal: the one gate to the data."""
    ctx: ApiContext = request.app.state.ctx
    return Scope(principal=tp.principal, site=ctx.site, store=ctx.store, store_error=ctx.store_error,
                 engine=ctx.engine, alarm_book=ctx.alarm_book)


Who = Annotated[TokenPrincipal, Depends(principal)]
Sc = Annotated[Scope, Depends(scope)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]


def _align(ts: float, window_s: int, tz: str) -> float:
    """The start of the local-clock window containing ts (windows align to local midnight, as the stores do)."""
    import datetime as dt

    from telemetry.windows import zone

    off = dt.datetime.fromtimestamp(ts, zone(tz)).utcoffset()
    o = off.total_seconds() if off else 0.0
    return (ts + o) // window_s * window_s - o


def create_app(site: Site, engine: Engine, store: Store | None, store_error: str | None = None,
               limiter: RateLimiter | None = None) -> FastAPI:
    """The API over one site, records database and telemetry store (the store may be None: 503 on telemetry)."""
    from api.evidence import create_tables as evidence_tables
    from api.tokens import create_tables as token_tables

    token_tables(engine)
    evidence_tables(engine)
    pii.create_tables(engine)
    ctx = ApiContext(site, engine, store, store_error, limiter or RateLimiter())
    app = FastAPI(title="retrofit open data API", version="1.0.0",
                  description="Read-only data of the district's old commercial buildings: buildings, Brick "
                              "equipment and points, latest values, aggregated history, sub-item energy, alarms, "
                              "retrofit projects and subsidies. Send `Authorization: Bearer rft_...`.")
    app.state.ctx = ctx

    @app.middleware("http")
    async def audit(request: Request, call_next: Callable[..., Any]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith("/api/"):
            actor = getattr(request.state, "actor", "anonymous")
            entry = {"status": response.status_code, "query": str(request.url.query)[:500],
                     "ms": round((time.perf_counter() - started) * 1000, 1)}
            try:
                await run_in_threadpool(append_audit, ctx.engine, actor, "api_request", "api",
                                        request.url.path[:120], request.method, entry)
            except Exception as exc:  # noqa: BLE001 - fail closed: no audit entry, no data
                log.error("audit log unavailable (%s); refused %s %s", type(exc).__name__, request.method,
                          request.url.path)
                return JSONResponse({"detail": "audit log unavailable: the request was not served; run "
                                               "`retrofit program import` or the records migration first"}, 503)
        return response

    @app.exception_handler(ScopeDenied)
    async def _denied(_: Request, exc: ScopeDenied) -> JSONResponse:
        return JSONResponse({"detail": NOT_FOUND}, 404)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"detail": f"unavailable: {exc}"}, 503)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"telemetry store unavailable: {exc}"}, 503)

    def building_file(sc: Scope, building_id: str):  # noqa: ANN202 - BuildingFile
        if not sc.allows(building_id):
            raise ScopeDenied(NOT_FOUND)
        return sc.site.building(building_id)

    def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
        chunk = items[offset:offset + limit]
        nxt = offset + limit if offset + limit < len(items) else None
        return {"items": chunk, "total": len(items), "limit": limit, "offset": offset, "next_offset": nxt}

    def building_view(sc: Scope, who: TokenPrincipal, bf: Any, detail: bool = False) -> dict[str, Any]:
        b = bf.building
        out: dict[str, Any] = {
            "id": b.id, "code": exports.building_code(sc.site, b.id), "name_zh": b.name.zh, "name_en": b.name.en,
            "address": b.address, "district": b.district, "district_code": b.district_code, "use": b.use.value,
            "year_built": b.year_built, "gross_floor_area_m2": b.gross_floor_area_m2,
            "floors_above": b.floors_above, "floors_below": b.floors_below, "lat": b.lat, "lon": b.lon,
            "timezone": b.timezone, "brick": "brick:Building", "tags": model.building_tags(bf),
            "retrofit_date": b.retrofit_date.isoformat() if b.retrofit_date else None,
            "equipment_count": len(bf.equipment), "point_count": sum(len(e.points) for e in bf.equipment)}
        if detail:
            out["owners"] = pii.owners_of(b, ctx.engine, who.may_see_pii)
        return out

    v1 = "/api/v1"

    @app.get(f"{v1}/buildings", responses=ERRORS, tags=["buildings"])
    def list_buildings(sc: Sc, who: Who, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
        """The buildings this token may read."""
        return page([building_view(sc, who, bf) for bf in sc.buildings()], limit, offset)

    @app.get(v1 + "/buildings/{building_id}", responses=ERRORS, tags=["buildings"])
    def get_building(building_id: ID, sc: Sc, who: Who) -> dict[str, Any]:
        """One building with its owner rows (personal fields masked unless the token holds the pii right)."""
        return building_view(sc, who, building_file(sc, building_id), detail=True)

    @app.get(v1 + "/buildings/{building_id}/owners", responses=ERRORS, tags=["buildings"])
    def get_owners(building_id: ID, sc: Sc, who: Who) -> dict[str, Any]:
        """Owner rows, shares and contact persons; masked unless a district token with the pii right."""
        bf = building_file(sc, building_id)
        return {"building": building_id, "masked": not who.may_see_pii,
                "owners": pii.owners_of(bf.building, ctx.engine, who.may_see_pii)}

    @app.get(v1 + "/buildings/{building_id}/equipment", responses=ERRORS, tags=["model"])
    def list_equipment(building_id: ID, sc: Sc, limit: Limit = 100, offset: Offset = 0,
                       points: bool = Query(True, description="include each equipment's points")) -> dict[str, Any]:
        """Equipment with Brick classes and Haystack-style tags (and their points)."""
        bf = building_file(sc, building_id)
        return page([model.equipment_view(bf, eq, points) for eq in bf.equipment], limit, offset)

    @app.get(v1 + "/buildings/{building_id}/points", responses=ERRORS, tags=["model"])
    def list_points(building_id: ID, sc: Sc, limit: Limit = 100, offset: Offset = 0,
                    brick: str | None = Query(None, max_length=80, description="only this Brick class"),
                    ) -> dict[str, Any]:
        """Points with Brick class, unit and tags."""
        bf = building_file(sc, building_id)
        items = [model.point_view(bf, eq, p) for eq in bf.equipment for p in eq.points
                 if brick is None or p.brick == brick.removeprefix("brick:")]
        return page(items, limit, offset)

    @app.get(v1 + "/buildings/{building_id}/brick.ttl", responses=ERRORS, tags=["model"],
             response_class=PlainTextResponse)
    def brick_ttl(building_id: ID, sc: Sc) -> Response:
        """The building's Brick model as Turtle."""
        bf = building_file(sc, building_id)
        return Response(model.brick_turtle(bf), media_type="text/turtle; charset=utf-8")

    @app.get(v1 + "/buildings/{building_id}/latest", responses=ERRORS, tags=["telemetry"])
    def latest(building_id: ID, sc: Sc, limit: Limit = 1000, offset: Offset = 0) -> dict[str, Any]:
        """The last reading of each point of the building that has one."""
        building_file(sc, building_id)
        rows = sc.latest(building_id)
        items = [{"point": k, "ts": r.ts, "value": r.value, "quality": str(r.quality),
                  "unit": sc.site.points[k].point.unit if k in sc.site.points else None}
                 for k, r in sorted(rows.items())]
        return page(items, limit, offset)

    @app.get(v1 + "/buildings/{building_id}/points/{point_id}/history", responses=ERRORS, tags=["telemetry"])
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
        start_ = _align(start_, w, bf.building.timezone)  # whole windows only: a page never splits one
        page_end = min(end_, start_ + w * limit)
        series = sc.aggregate([key], start_, page_end, w, agg, bf.building.timezone).get(key, [])
        return {"point": key, "unit": sc.site.points[key].point.unit, "agg": agg.value, "window_s": w,
                "start": start_, "end": page_end, "items": [{"t": t, "v": v} for t, v in series],
                "next_start": page_end if page_end < end_ else None}

    @app.get(v1 + "/buildings/{building_id}/energy", responses={**ERRORS, 403: {"description": "role"}},
             tags=["energy"])
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

    @app.get(f"{v1}/alarms", responses=ERRORS, tags=["alarms"])
    def alarms(sc: Sc, building: str | None = Query(None, max_length=64),
               state: list[str] | None = Query(None, description="raised, acknowledged, cleared"),
               severity: list[str] | None = Query(None), family: list[str] | None = Query(None),
               since: float | None = Query(None, ge=0, le=4e9), limit: Limit = 100,
               offset: Offset = 0) -> dict[str, Any]:
        """Alarms of the token's buildings, newest first."""
        if building is not None and not sc.allows(building):
            raise ScopeDenied(NOT_FOUND)
        rows = sc.alarms(state=state or None, building=building, family=family, severity=severity, since=since,
                         limit=min(offset + limit + 1, 100_000))
        total_known = len(rows)
        out = page([a.as_dict() for a in rows], limit, offset)
        out["total"] = total_known if total_known <= offset + limit else None  # more exist: not counted
        return out

    def projects_of(sc: Scope, building: str | None) -> list[dict[str, Any]]:
        try:
            sc.require(Can.RECORDS)
        except ScopeDenied:
            raise HTTPException(403, f"{sc.principal.role.value} tokens may not read retrofit records") from None
        if building is not None and not sc.allows(building):
            raise ScopeDenied(NOT_FOUND)
        q, sf = sc._records()
        ids = [building] if building else list(sc.building_ids)
        with sf() as s:
            return [p for bid in ids for p in q.project_status(s, building_id=bid)]

    @app.get(f"{v1}/projects", responses={**ERRORS, 403: {"description": "role may not read records"}},
             tags=["retrofit"])
    def projects(sc: Sc, building: str | None = Query(None, max_length=64), limit: Limit = 100,
                 offset: Offset = 0) -> dict[str, Any]:
        """Retrofit projects: stage, progress, budget, measures, milestones, document digests, applications."""
        return page(projects_of(sc, building), limit, offset)

    @app.get(f"{v1}/subsidies", responses={**ERRORS, 403: {"description": "role may not read records"}},
             tags=["retrofit"])
    def subsidies(sc: Sc, building: str | None = Query(None, max_length=64), limit: Limit = 100,
                  offset: Offset = 0) -> dict[str, Any]:
        """Subsidy applications with status, assessed and paid amounts."""
        items = [{"application_id": a["id"], "project_id": p["project_id"], "building_id": p["building_id"],
                  "policy_id": a["policy_id"], "status": a["status"], "assessed_amount": a["assessed_amount"],
                  "paid": a["paid"]} for p in projects_of(sc, building) for a in p["applications"]]
        return page(items, limit, offset)

    @app.get(v1 + "/buildings/{building_id}/subsidies", responses={**ERRORS, 403: {"description": "no records"}},
             tags=["retrofit"])
    def eligibility(building_id: ID, sc: Sc) -> dict[str, Any]:
        """Every policy's eligibility verdict for the building: conditions with evidence, amount, what is missing."""
        building_file(sc, building_id)
        projects_of(sc, building_id)  # role check
        return {"building": building_id, "policies": sc.subsidies(building_id)}

    @app.get(f"{v1}/catalogue", responses=ERRORS, tags=["catalogue"])
    def catalogue(who: Who) -> dict[str, Any]:
        """Every dataset the district shares: fields and units, update interval, owner, sensitivity, readers."""
        return {"datasets": cat.as_dicts(ctx.site)}

    return app
