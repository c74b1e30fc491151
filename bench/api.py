"""API benchmark: requests through the real API (uvicorn, token check, scope, audit chain) and the city export.

Usage: python bench/api.py [--quick]

Prints one JSON line per result: bench, metric, value, unit, baseline, ratio (baseline measured in this run).
- api_latest: GET /api/v1/buildings/jiefangbei-tower/latest (all ~130 points) over one keep-alive session,
  requests/s; baseline = the same store.latest() call plus JSON encoding in-process (what the API adds: HTTP,
  token lookup, scope, audit row + seal per request).
- api_history: GET .../points/{p}/history of one day at 15-minute windows, requests/s; baseline = the store's
  aggregate called directly.
- export_15min: sub-item energy of one building at 15 minutes over the history (DELTA in the store), seconds;
  baseline = pulling every meter's raw readings into Python and differencing them per window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from buildings.site import Site
    from telemetry.store import Store

B = "jiefangbei-tower"


def emit(bench: str, metric: str, value: float, unit: str, baseline: float | None) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(json.dumps({"bench": bench, "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": round(baseline, 3) if baseline is not None else None, "ratio": ratio}), flush=True)


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def naive_export(store: Store, site: Site, start: float, end: float, window: int) -> int:
    """Raw readings of every sub-item meter counter into Python, differenced per window."""
    from telemetry.queries import meters

    rows = 0
    for m in meters(site, B):
        if not (m.subitem and m.energy_point):
            continue
        raw = store.raw(m.energy_point, start - window, end)
        last: dict[float, float] = {}
        for r in raw:
            if isinstance(r.value, float):
                last[r.ts // window * window] = r.value
        keys = sorted(last)
        rows += sum(1 for a, b in zip(keys, keys[1:], strict=False) if last[b] >= last[a])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 days of history, 3 s per rate (under a minute)")
    args = ap.parse_args()
    days, secs = (2, 3.0) if args.quick else (14, 10.0)

    import uvicorn

    from api.app import create_app
    from api.exports import energy_rows
    from api.tokens import create_token
    from buildings.records.base import make_engine
    from buildings.records.migrate import upgrade
    from buildings.site import load_site
    from retrofit.devservers import free_port
    from simulators.history import backfill
    from telemetry.embedded import EmbeddedStore
    from telemetry.store import Agg

    site = load_site(str(ROOT / "buildings" / "sites" / "yuzhong"))
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(tmp) / "telemetry.db")
        end = time.time() // 3600 * 3600
        start = end - days * 86400
        backfill(site, store, start, end, buildings=[B])
        engine = make_engine(f"sqlite:///{tmp}/records.db")
        upgrade(f"sqlite:///{tmp}/records.db", engine=engine)
        app = create_app(site, engine, store)
        _, token = create_token(engine, "bench", "district", days=1, rate_per_min=100_000)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               access_log=False))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.05)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        base = f"http://127.0.0.1:{port}/api/v1/buildings/{B}"
        try:
            def via_api() -> None:
                http.get(base + "/latest", params={"limit": 1000}, timeout=30).raise_for_status()

            def direct() -> None:
                json.dumps({k: [r.ts, r.value, str(r.quality)] for k, r in store.latest(building=B).items()})

            emit("api_latest", "requests_per_s", rate(via_api, secs), "req/s", rate(direct, secs))
            key = f"{B}/ahu1-sat"

            def hist_api() -> None:
                http.get(base + "/points/ahu1-sat/history", params={"start": end - 86400, "end": end,
                                                                      "window": 900}, timeout=30).raise_for_status()

            def hist_direct() -> None:
                store.aggregate([key], end - 86400, end, 900, Agg.MEAN, "Asia/Shanghai")

            emit("api_history", "requests_per_s", rate(hist_api, secs), "req/s", rate(hist_direct, secs))
            t_store, t_naive = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                energy_rows(store, site, B, start, end, "15min")
                t_store.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                naive_export(store, site, start, end, 900)
                t_naive.append(time.perf_counter() - t0)
            emit("export_15min", f"seconds_for_{days}_days", statistics.median(t_store), "s",
                 statistics.median(t_naive))
        finally:
            server.should_exit = True
            th.join(timeout=10)
            store.close()
            engine.dispose()


if __name__ == "__main__":
    main()
