"""Alarm records benchmark: what flood control costs when a storm of events reaches the AlarmBook.

Prints one JSON line per result (bench, metric, value, unit, baseline, ratio):
- storm_events_per_s: engine events recorded per second into a SQLite records database, with the default flood
  control (grouping, per-rule and per-building rate limits); baseline: the same events with flood control off
  (FloodControl(building_limit=0, rule_limit=0, group_min=0)), measured in the same run.
- storm_open_alarms: the open alarms an operator is shown after the storm (the point of flood control);
  baseline: without flood control.

The storm: 20 buildings; in each, one rule raising on 40 points at one instant (a controller gone offline), then
30 rules raising on one point each, one every 20 s, then every point clearing. Event time, as in a replay.

    python bench/alarms.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.alarms import AlarmBook, FloodControl  # noqa: E402
from rules.engine import AlarmEvent  # noqa: E402
from rules.model import Family, Severity  # noqa: E402

T0 = 1772420400.0


def out(metric: str, value: float, unit: str, baseline: float | None = None, **extra: object) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(json.dumps({"bench": "alarms", "metric": metric, "value": round(value, 2), "unit": unit,
                      "baseline": round(baseline, 2) if baseline is not None else None, "ratio": ratio, **extra}),
          flush=True)


def storm(buildings: int) -> list[list[AlarmEvent]]:
    """Batches of events as the engine hands them over (one batch per evaluation step)."""
    def ev(kind: str, rule: str, b: str, subject: str, ts: float) -> AlarmEvent:
        return AlarmEvent(kind, rule, Family.SENSOR_HEALTH, Severity.WARNING, b, subject, subject, ts,
                          {"x": 1.0}, "告警", "alarm")

    batches = []
    names = [f"b{i:02d}" for i in range(buildings)]
    batches.append([ev("raise", "sv-stale", b, f"p{j:02d}", T0) for b in names for j in range(40)])
    for k in range(30):
        batches.append([ev("raise", f"rule-{k:02d}", b, f"p{k:02d}", T0 + 20 * (k + 1)) for b in names])
    batches.append([ev("clear", "sv-stale", b, f"p{j:02d}", T0 + 3600) for b in names for j in range(40)]
                   + [ev("clear", f"rule-{k:02d}", b, f"p{k:02d}", T0 + 3600) for b in names for k in range(30)])
    return batches


def run(control: FloodControl, batches: list[list[AlarmEvent]]) -> tuple[float, int, int]:
    """(events per second, open alarms shown after the raises, total events)."""
    with tempfile.TemporaryDirectory() as d:
        book = AlarmBook(f"sqlite:///{d}/records.db", flood=control)
        n = sum(len(b) for b in batches)
        t = time.perf_counter()
        for b in batches[:-1]:
            book.apply(b)
        shown = len(book.list(state="raised", limit=100_000))
        book.apply(batches[-1])
        dt = time.perf_counter() - t
        book.close()
    return n / dt, shown, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 buildings instead of 20")
    args = ap.parse_args()
    batches = storm(5 if args.quick else 20)
    off = FloodControl(building_limit=0, rule_limit=0, group_min=0)
    base_rate, base_shown, n = run(off, batches)
    rate, shown, _ = run(FloodControl(), batches)
    out("storm_events_per_s", rate, "events/s", base_rate, events=n)
    out("storm_open_alarms", shown, "alarms", base_shown, note="alarms shown after the raises (not suppressed)")


if __name__ == "__main__":
    main()
