"""The read-only HTTP API (FastAPI), versioned under /api/v1, OpenAPI at /openapi.json.

Every request: the bearer token is checked (api.tokens; missing, malformed, unknown, revoked or expired -> 401,
one message for all), its per-token rate is enforced (token bucket, 429 with Retry-After), and the request is
appended to the hash-chained audit log (path, method, status, token id: never the token or personal data).
Data is read through the Scope the dashboard also uses (insight.scope), the one gate that knows what a role may
see: a building outside the token's scope is 404 with the same body as a building that does not exist.

The routes live in api/routes/ (one router per area, sharing api/deps.py); this module builds the app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api import pii
from api.deps import NOT_FOUND, ApiContext, RateLimiter, context
from api.evidence import append_audit
from api.routes import buildings, retrofit, telemetry
from buildings.access import ScopeDenied, Unavailable
from buildings.site import Site
from telemetry.store import Store, StoreError

__all__ = ["ApiContext", "RateLimiter", "create_app"]
log = logging.getLogger("api")
DESCRIPTION = ("Read-only data of the district's old commercial buildings: buildings, Brick equipment and points, "
               "latest values, aggregated history, sub-item energy, alarms, retrofit projects, subsidies and "
               "measured savings. Send `Authorization: Bearer rft_...`.")


async def audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Append every /api/ request to the audit log; no audit entry, no data (503)."""
    started = time.perf_counter()
    response = await call_next(request)
    if request.url.path.startswith("/api/"):
        actor = getattr(request.state, "actor", "anonymous")
        entry = {"status": response.status_code, "query": str(request.url.query)[:500],
                 "ms": round((time.perf_counter() - started) * 1000, 1)}
        try:
            await run_in_threadpool(append_audit, context(request).engine, actor, "api_request", "api",
                                    request.url.path[:120], request.method, entry)
        except Exception as exc:  # noqa: BLE001 - fail closed: no audit entry, no data
            log.error("audit log unavailable (%s); refused %s %s", type(exc).__name__, request.method,
                      request.url.path)
            return JSONResponse({"detail": "audit log unavailable: the request was not served; run "
                                           "`retrofit program import` or the records migration first"}, 503)
    return response


async def _denied(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": NOT_FOUND}, 404)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"unavailable: {exc}"}, 503)


async def _store_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"telemetry store unavailable: {exc}"}, 503)


def create_app(site: Site, engine: Engine, store: Store | None, store_error: str | None = None,
               limiter: RateLimiter | None = None) -> FastAPI:
    """The API over one site, records database and telemetry store (the store may be None: 503 on telemetry)."""
    from api.evidence import create_tables as evidence_tables
    from api.tokens import create_tables as token_tables

    token_tables(engine)
    evidence_tables(engine)
    pii.create_tables(engine)
    app = FastAPI(title="retrofit open data API", version="1.0.0", description=DESCRIPTION)
    app.state.ctx = ApiContext(site, engine, store, store_error, limiter or RateLimiter())
    app.middleware("http")(audit)
    app.add_exception_handler(ScopeDenied, _denied)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(StoreError, _store_error)
    for r in (buildings.router, telemetry.router, retrofit.router):
        app.include_router(r)
    return app
