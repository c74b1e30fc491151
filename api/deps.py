"""What every route of the API shares: the app's context, the token's principal (401 / 429), its Scope, the
path and paging parameters, and the page envelope."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy import Engine

from api.tokens import TokenPrincipal, authenticate
from buildings.access import ScopeDenied
from buildings.site import BuildingFile, Site
from insight.scope import Scope
from telemetry.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from rules.alarms import AlarmBook

NOT_FOUND = "Not Found"
UNAUTHORIZED = "missing, invalid, revoked or expired token"
ID = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="a building id",
                         examples=["jiefangbei-tower"])]
PointID = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="a point id of the building",
                              examples=["ch1-chws"])]
ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": UNAUTHORIZED}, 404: {"description": NOT_FOUND},
                                           429: {"description": "over this token's rate limit"}}
RECORDS_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 403: {"description": "role may not read records"}}
V1 = "/api/v1"


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
    alarm_book: AlarmBook | None = None


def context(request: Request) -> ApiContext:
    """The app's context (set by create_app)."""
    return request.app.state.ctx


def principal(request: Request) -> TokenPrincipal:
    """The token's principal, or 401; then the token's rate limit, or 429."""
    ctx = context(request)
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
    """The shared Scope (insight.scope) for the token's principal: the one gate to the data."""
    ctx = context(request)
    return Scope(principal=tp.principal, site=ctx.site, store=ctx.store, store_error=ctx.store_error,
                 engine=ctx.engine, alarm_book=ctx.alarm_book)


Ctx = Annotated[ApiContext, Depends(context)]
Who = Annotated[TokenPrincipal, Depends(principal)]
Sc = Annotated[Scope, Depends(scope)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
BuildingQ = Annotated[str | None, Query(max_length=64)]


def building_file(sc: Scope, building_id: str) -> BuildingFile:
    """The building, or 404 (the same for one outside the token's scope as for one that does not exist)."""
    if not sc.allows(building_id):
        raise ScopeDenied(NOT_FOUND)
    return sc.site.building(building_id)


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """One page of items with the total and the next offset."""
    chunk = items[offset:offset + limit]
    nxt = offset + limit if offset + limit < len(items) else None
    return {"items": chunk, "total": len(items), "limit": limit, "offset": offset, "next_offset": nxt}
