"""Rules engine benchmark: the full library bound to the sample district, replaying simulated history.

Prints one JSON line per result (bench, metric, value, unit, baseline, ratio):
- replay_readings_per_s: readings per second through Engine.feed on one core (history generated beforehand,
  not timed); baseline: the same engine with every binding evaluated on its own (no vectorisation across
  equipment), measured in the same run on a shorter slice.
- rule_state_mb_100k_points: the rule state (per-point arrays, persistence, windows, lags) for a site of >= 100,000
  points (the sample district copied); engine_total_mb_100k_points: everything the engine allocates (tracemalloc),
  binding metadata included.

    python bench/rules.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: no BLAS threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from buildings.site import Site, load_site  # noqa: E402
from retrofit.history import generate  # noqa: E402
from rules.engine import Engine, RuleInstance  # noqa: E402
from rules.model import load_rules  # noqa: E402
from telemetry.reading import Reading  # noqa: E402

SITE = Path(__file__).resolve().parent.parent / "buildings" / "sites" / "yuzhong"
START = dt.datetime(2026, 3, 2, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def out(metric: str, value: float, unit: str, baseline: float | None = None, **extra: object) -> None:
    ratio = round(value / baseline, 2) if baseline else None
    print(json.dumps({"bench": "rules", "metric": metric, "value": round(value, 2), "unit": unit,
                      "baseline": round(baseline, 2) if baseline is not None else None, "ratio": ratio, **extra}),
          flush=True)


def history(site: Site, hours: float, step: float) -> list[list[Reading]]:
    return list(generate(site, START, START + hours * 3600, step_s=step, seed=3, sort=True, chunk_days=1))


def per_binding(eng: Engine) -> None:
    """Turn an engine into the naive baseline: one rule instance per binding (no vectorisation)."""
    insts = []
    for inst in eng.instances:
        for b in inst.bindings:
            insts.append(RuleInstance(inst.rule, [b], eng.index, eng._bidx, eng.step))
    eng.instances = insts


def rate(site: Site, rules: list, batches: list[list[Reading]], step: float, naive: bool = False) -> tuple[float, int]:
    eng = Engine(site, rules, step_s=step)
    if naive:
        per_binding(eng)
    n = sum(len(b) for b in batches)
    gc.collect()
    t0 = time.process_time()
    for b in batches:
        eng.feed(b)
    eng.flush()
    return n / (time.process_time() - t0), len(eng.report.bindings)


def big_site(site: Site, min_points: int) -> Site:
    """Copies of the sample district's buildings (new ids) until the site has at least min_points points."""
    files = []
    n = 0
    i = 0
    while n < min_points:
        for bf in site.files:
            files.append(bf.model_copy(update={"building": bf.building.model_copy(
                update={"id": f"{bf.building.id}-{i}"})}))
            n += sum(len(e.points) for e in bf.equipment)
        i += 1
    return Site(files=files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short history (under a minute)")
    args = ap.parse_args()
    site = load_site(str(SITE))
    rules = load_rules()
    step = 60.0
    hours = 6 if args.quick else 48
    batches = history(site, hours, step)
    value, nb = rate(site, rules, batches, step)
    base_batches = history(site, 1 if args.quick else 4, step)
    base, _ = rate(site, rules, base_batches, step, naive=True)
    out("replay_readings_per_s", value, "readings/s", base, rules=len(rules), bindings=nb,
        points=len(site.points), history_h=hours, step_s=step, clock="process CPU time, one thread")

    big = big_site(site, 100_000)
    npts = len(big.points)  # the site model itself is not rule state: built before measuring
    ticks = 5 if args.quick else 30
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    eng = Engine(big, rules, step_s=step)
    # a few hours of ticks so that windows and persistence state are allocated
    keys = [k for k in eng.keys if "/@" not in k]
    for k in range(ticks):
        t = START + k * step
        eng.feed([Reading(p, t, 20.0 + (k % 7) * 0.1) for p in keys])
    eng.flush()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    out("rule_state_mb_100k_points", eng.state_bytes() / 2**20, "MB", None, points=npts,
        bindings=len(eng.report.bindings), ticks=ticks,
        note="per-point arrays, persistence state, window and lag buffers, constants (Engine.state_bytes)")
    out("engine_total_mb_100k_points", held / 2**20, "MB", None, points=npts, ticks=ticks,
        note="tracemalloc of everything the engine allocates, incl. binding objects, index and key strings")


if __name__ == "__main__":
    main()
