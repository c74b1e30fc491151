"""Ingest benchmark: durable buffer -> InfluxDB vs a bare HTTP POST, the embedded store, a year-long aggregate.

Usage: python bench/ingest.py [--quick] [--readings N] [--repeat R]

Prints one JSON line per result: bench, metric, value, unit, baseline, ratio (baseline measured in this run).
- buffer_to_influx: N readings appended to the durable buffer (fsync'd batches of 5,000) and drained into a real
  influxd, timed from the first append until the store confirmed the last; baseline = POSTing the same line
  protocol, already encoded, in batches of 5,000 over one HTTP session (the fastest a client can be).
- embedded_write: N readings written to the SQLite store in batches of 5,000 (target >= 50,000/s);
  buffer_to_embedded: the same through the durable buffer, which drains in the store's preferred batches.
- influx_day_by_hour: hourly energy (DELTA) and hourly mean power over one year of 15-minute data for one meter,
  median of 5 runs; baseline = fetching the raw year and bucketing it in Python. Target < 200 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from retrofit.devservers import start_influxd  # noqa: E402
from telemetry.buffer import DurableBuffer  # noqa: E402
from telemetry.embedded import EmbeddedStore  # noqa: E402
from telemetry.influx import InfluxStore  # noqa: E402
from telemetry.reading import Reading  # noqa: E402
from telemetry.store import Agg  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

BATCH = 5000
POINTS = 1000


def emit(metric: str, value: float, unit: str, baseline: float | None = None, **extra: object) -> None:
    ratio = None
    if baseline:
        ratio = round(value / baseline, 3) if unit.endswith("/s") else round(baseline / value, 3)
    print(json.dumps({"bench": "ingest", "metric": metric, "value": round(value, 3), "unit": unit,
                      "baseline": round(baseline, 3) if baseline is not None else None, "ratio": ratio, **extra}),
          flush=True)


def make_batches(n: int, t0: float) -> list[list[Reading]]:
    """n readings: POINTS points over 10 buildings, one reading per point per second."""
    keys = [f"b{i % 10}/p{i}" for i in range(POINTS)]
    out, batch = [], []
    for s in range(n):
        batch.append(Reading(keys[s % POINTS], t0 + s // POINTS, float(s % 977) * 0.5))
        if len(batch) == BATCH:
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


def bare_post_rate(url: str, db: str, bodies: list[bytes], n: int) -> float:
    """Baseline: the same line protocol, already encoded, POSTed in batches over one session."""
    s = requests.Session()
    t = time.perf_counter()
    for body in bodies:
        r = s.post(f"{url}/write", params={"db": db, "precision": "ms"}, data=body, timeout=60,
                   headers={"Content-Type": "text/plain; charset=utf-8"})
        if r.status_code != 204:
            raise RuntimeError(f"baseline write failed: {r.status_code} {r.text[:200]}")
    rate = n / (time.perf_counter() - t)
    s.close()
    return rate


def buffer_rate(url: str, db: str, batches: list[list[Reading]], n: int, work: Path) -> tuple[float, int, float]:
    store = InfluxStore(url, database=db, timeout_s=60)
    buf = DurableBuffer(work / f"buf-{db}", store, drain_batch=BATCH)
    t, cpu = time.perf_counter(), time.process_time()
    for b in batches:
        buf.append(b)
    if not buf.flush(timeout=600):
        raise RuntimeError(f"buffer did not drain: {buf.status()}")
    rate = n / (time.perf_counter() - t)
    cpu_us = (time.process_time() - cpu) / n * 1e6  # our process only (not influxd): load-independent
    buf.close()
    count = store.count()
    store.close()
    return rate, count, cpu_us


def embedded_rate(batches: list[list[Reading]], n: int, work: Path) -> float:
    store = EmbeddedStore(work / "embedded.db")
    t = time.perf_counter()
    for b in batches:
        store.write(b)
    rate = n / (time.perf_counter() - t)
    assert store.count() == n, store.count()
    store.close()
    return rate


def year_of_meter(t_end: float) -> tuple[list[Reading], float]:
    start = t_end - 365 * 86400
    start -= start % 86400
    readings, kwh = [], 1_000_000.0
    for i in range(365 * 96):
        t = start + i * 900
        hour = (t / 3600 + 8) % 24
        kw = 300.0 if 8 <= hour < 19 else 60.0
        kwh += kw / 4
        readings += [Reading("b0/main-kwh", t, kwh), Reading("b0/main-p", t, kw)]
    return readings, start


def timed(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200,000 readings instead of 1,000,000 (under a minute)")
    ap.add_argument("--readings", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=None, help="runs of baseline and buffer (best counts); "
                    "default 2 with --quick, else 1")
    args = ap.parse_args()
    n = args.readings or (200_000 if args.quick else 1_000_000)
    args.repeat = args.repeat or (2 if args.quick else 1)
    work = Path(tempfile.mkdtemp(prefix="retrofit-bench-ingest-"))
    server = start_influxd(work / "influxd")
    url = f"http://127.0.0.1:{server.port}"
    try:
        t0 = time.time() - 86400
        batches = make_batches(n, t0)
        # baseline and buffer take turns on fresh databases of the same server (same data); best of --repeat
        # runs each, so a burst of load from other processes does not decide the ratio
        enc = InfluxStore(url, database="encoder")
        bodies = [enc.encode([(r.point, r.ts, r.value, r.quality) for r in b]).encode() for b in batches]
        enc.close()
        bases, rates, cpus = [], [], []
        for run in range(args.repeat):
            with InfluxStore(url, database=f"baseline{run}") as check:
                bases.append(bare_post_rate(url, f"baseline{run}", bodies, n))
                assert check.count() == n, check.count()
            rate, count, cpu_us = buffer_rate(url, f"buffered{run}", batches, n, work)
            cpus.append(cpu_us)
            if count != n:
                raise RuntimeError(f"buffer delivered {count} of {n} readings")
            rates.append(rate)
        del bodies
        emit("buffer_to_influx", max(rates), "readings/s", max(bases), readings=n, batch=BATCH, runs=args.repeat,
             client_cpu_us_per_reading=round(min(cpus), 2), target=">=100000 and >=0.3x")
        emit("embedded_write", embedded_rate(batches, n, work), "readings/s", None, readings=n, batch=BATCH,
             target=">=50000")
        emb = EmbeddedStore(work / "embedded-buffered.db")
        buf_emb = DurableBuffer(work / "buf-embedded", emb)
        t = time.perf_counter()
        for b in batches:
            buf_emb.append(b)
        buf_emb.flush()
        emit("buffer_to_embedded", n / (time.perf_counter() - t), "readings/s", None, readings=n,
             drain_batch=buf_emb.drain_batch, target=">=50000")
        buf_emb.close()
        assert emb.count() == n, emb.count()
        emb.close()
        del batches

        year, start = year_of_meter(time.time())
        store = InfluxStore(url, database="year")
        for i in range(0, len(year), BATCH):
            store.write(year[i:i + BATCH])
        end = start + 365 * 86400

        def python_side() -> None:  # baseline: pull the raw year and bucket it in Python
            raw = store.raw("b0/main-p", start, end)
            hours: dict[float, list[float]] = {}
            for r in raw:
                hours.setdefault(r.ts - r.ts % 3600, []).append(r.value)  # type: ignore[arg-type]
            _ = {h: sum(v) / len(v) for h, v in hours.items()}

        base_ms = timed(python_side, runs=3)
        res = store.aggregate(["b0/main-kwh"], start, end, 3600, Agg.DELTA, tz="Asia/Shanghai")
        assert len(res["b0/main-kwh"]) >= 8759, len(res["b0/main-kwh"])
        delta_ms = timed(lambda: store.aggregate(["b0/main-kwh"], start, end, 3600, Agg.DELTA, tz="Asia/Shanghai"))
        mean_ms = timed(lambda: store.aggregate(["b0/main-p"], start, end, 3600, Agg.MEAN, tz="Asia/Shanghai"))
        emit("influx_day_by_hour_energy_delta", delta_ms, "ms", base_ms, windows=len(res["b0/main-kwh"]),
             readings=365 * 96, target="<200")
        emit("influx_day_by_hour_mean_power", mean_ms, "ms", base_ms, readings=365 * 96, target="<200")
        store.close()

        emb = EmbeddedStore(work / "year.db")
        for i in range(0, len(year), 50_000):
            emb.write(year[i:i + 50_000])
        emb_ms = timed(lambda: emb.aggregate(["b0/main-kwh"], start, end, 3600, Agg.DELTA, tz="Asia/Shanghai"))
        emit("embedded_day_by_hour_energy_delta", emb_ms, "ms", None, readings=365 * 96, target="<200")
        emb.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
