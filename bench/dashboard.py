"""Dashboard benchmark: first render of every page (Streamlit AppTest) over 13 months of 15-minute history of
the sample district in a real InfluxDB.

Usage: python bench/dashboard.py [--quick] [--days N]

Prints one JSON line per result: bench, metric, value, unit, baseline, ratio (baseline measured in this run).
- backfill: the simulator's history generator writing the district's history into a throwaway influxd.
- page_first_render.<page>: one AppTest run of the page with the aggregate cache cleared (process resources
  such as the site and the store connection already warm, as for any user after the first); target < 2 s.
  baseline = an AppTest run of a trivial page (title + metric): Streamlit's own floor on this machine.
- page_warm_render.<page>: the same page again (cache warm).
- year_daily_energy: one meter's daily energy over the whole history from the store's aggregate (DELTA per
  local day); baseline = pulling the raw readings and bucketing them in Python (what the pages avoid).
--quick uses 14 days of history (under a minute); the full run backfills 13 months (several minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ["portfolio", "building", "energy", "alarms", "retrofit", "subsidies", "program", "simulators"]
SITE = ROOT / "buildings" / "sites" / "yuzhong"
PROGRAMME = ROOT / "buildings" / "program" / "yuzhong.yaml"
TRIVIAL = "import streamlit as st\nst.title('bench')\nst.metric('x', 1)\n"


def emit(metric: str, value: float, unit: str, baseline: float | None = None, **extra: object) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(json.dumps({"bench": "dashboard", "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": None if baseline is None else round(baseline, 3), "ratio": ratio, **extra}),
          flush=True)


def run_page(path: str, role: str, username: str, page: str | None = None) -> tuple[float, object]:
    """One AppTest run of the app entry script opened on ``page`` (as a signed-in user); seconds taken."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(path, default_timeout=120)
    at.session_state["principal"] = {"username": username, "role": role, "owner_id": None}
    at.session_state["last_seen"] = time.time()
    if page:
        at.switch_page(page)
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0, at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="14 days of history instead of 13 months")
    ap.add_argument("--days", type=int, default=None, help="days of history (default 395, quick 14)")
    args = ap.parse_args()
    days = args.days or (14 if args.quick else 395)

    import streamlit as st

    from buildings.records.base import make_engine, session_factory
    from buildings.records.migrate import upgrade
    from buildings.records.program import import_all
    from buildings.site import load_site
    from buildings.subsidy.policy import POLICY_DIR, load_policies
    from dashboard.auth import add_user
    from retrofit.devservers import start_influxd
    from simulators.history import backfill
    from telemetry.influx import InfluxStore
    from telemetry.store import Agg

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    server = start_influxd(work / "influxd")
    try:
        url = f"http://127.0.0.1:{server.port}"
        site = load_site(str(SITE))
        store = InfluxStore(url, "bench")
        end = time.time() // 900 * 900
        start = end - days * 86400
        stats = backfill(site, store, start, end)
        emit("backfill", stats.seconds, "s", readings=stats.readings, days=days, points=stats.points)

        data = work / "data"
        records = f"sqlite:///{data / 'records.db'}"
        engine = make_engine(records)
        upgrade(records, engine=engine)
        with session_factory(engine).begin() as s:
            import_all(s, site, PROGRAMME, load_policies(POLICY_DIR), "bench", str(POLICY_DIR))
        add_user(engine, "bench-district", "bench-password-1", "district")
        add_user(engine, "bench-tech", "bench-password-1", "technician")
        engine.dispose()
        os.environ.update({"RETROFIT_INFLUX_URL": url, "RETROFIT_INFLUX_DATABASE": "bench",
                           "RETROFIT_DATA_DIR": str(data), "RETROFIT_SITE": str(SITE)})
        os.environ.pop("RETROFIT_CONFIG", None)
        os.chdir(work)

        trivial = work / "trivial.py"
        trivial.write_text(TRIVIAL)
        run_page(str(trivial), "district", "bench-district")
        floor = min(run_page(str(trivial), "district", "bench-district")[0] for _ in range(3))
        # warm the process resources (site model, store connection, records engine) once
        app = str(ROOT / "dashboard" / "app.py")
        run_page(app, "district", "bench-district")
        for page in PAGES:
            role, user = ("technician", "bench-tech") if page == "simulators" else ("district", "bench-district")
            st.cache_data.clear()
            cold, at = run_page(app, role, user, f"pages/{page}.py")
            errors = [str(e.value)[:200] for e in at.exception]  # type: ignore[attr-defined]
            title = at.title[0].value if at.title else ""  # type: ignore[attr-defined]
            warm, _ = run_page(app, role, user, f"pages/{page}.py")
            emit(f"page_first_render.{page}", cold, "s", floor, target_s=2.0, ok=cold < 2.0 and not errors,
                 errors=errors, title=title)
            emit(f"page_warm_render.{page}", warm, "s", floor)

        key = next(m.energy_point for m in __import__("telemetry.queries", fromlist=["meters"]).meters(site)
                   if m.subitem == "total" and m.energy_point)
        t0 = time.perf_counter()
        agg = store.aggregate([key], start, end, 86400, Agg.DELTA, "Asia/Shanghai")
        t_agg = time.perf_counter() - t0
        t0 = time.perf_counter()
        raw = store.raw(key, start, end)
        by_day: dict[int, list[float]] = {}
        for r in raw:
            if r.good:
                by_day.setdefault(int((r.ts + 8 * 3600) // 86400), []).append(float(r.value))  # type: ignore[arg-type]
        naive = {d: v[-1] - v[0] for d, v in by_day.items()}
        t_raw = time.perf_counter() - t0
        emit("year_daily_energy", t_agg, "s", t_raw, days=len(agg[key]), raw_readings=len(raw), naive_days=len(naive))
        store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
