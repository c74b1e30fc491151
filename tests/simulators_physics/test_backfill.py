"""`retrofit backfill` into the embedded store and into a real influxd; the in-memory history generator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from buildings.site import Site
from retrofit.devservers import ServerProcess
from retrofit.history import generate
from simulators.points import SitePhysics
from tests.simulators_physics.conftest import SAMPLE, epoch

ROOT = Path(__file__).resolve().parents[2]
RETROFIT = [sys.executable, "-m", "retrofit.cli"]
SCENARIO = ROOT / "simulators" / "scenarios" / "march-2026-all-faults.yaml"


def run_backfill(env: dict[str, str], *args: str) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RETROFIT_")}  # only what the test sets
    full.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([*RETROFIT, "backfill", "--site", str(SAMPLE), "--json", *args], cwd=ROOT, env=full,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_backfill_into_the_embedded_store(tmp_path: Path, site: Site, physics: SitePhysics) -> None:
    from telemetry.embedded import EmbeddedStore

    truth = tmp_path / "truth.json"
    res = run_backfill({"RETROFIT_DATA_DIR": str(tmp_path)}, "--from", "2026-03-18", "--to", "2026-03-19",
                       "--buildings", "daping-makerworks", "--scenario", str(SCENARIO), "--seed", "0",
                       "--truth", str(truth))
    n_points = len([k for k in site.points if k.startswith("daping-makerworks/")])
    assert res["readings"] == n_points * 96 and res["points"] == n_points
    store = EmbeddedStore(tmp_path / "telemetry.db")
    try:
        assert store.count() == n_points * 96
        start = epoch(2026, 3, 18)
        raw = store.raw("daping-makerworks/em-main-p", start, start + 86400)
        assert len(raw) == 96
        expect, _ = physics.evaluate("daping-makerworks", np.array([r.ts for r in raw]),
                                     ["daping-makerworks/em-main-p"])
        assert np.allclose([r.value for r in raw], expect["daping-makerworks/em-main-p"])
        smoke = store.raw("daping-makerworks/smoke-workshop-alarm", start, start + 86400)
        assert max(r.value for r in smoke) == 1.0  # the scenario's smoke fault is in the history
    finally:
        store.close()
    gt = json.loads(truth.read_text())
    assert {g["kind"] for g in gt} >= {"smoke", "sensor_stuck"}


def test_backfill_into_influxdb(influxd: ServerProcess, tmp_path: Path, site: Site) -> None:
    from telemetry.influx import InfluxStore

    url = f"http://127.0.0.1:{influxd.port}"
    res = run_backfill({"RETROFIT_DATA_DIR": str(tmp_path), "RETROFIT_INFLUX_URL": url,
                        "RETROFIT_INFLUX_DATABASE": "simbackfill"},
                       "--from", "2026-07-01", "--to", "2026-07-01T12:00", "--buildings", "jiefangbei-tower")
    n_points = len([k for k in site.points if k.startswith("jiefangbei-tower/")])
    assert res["readings"] == n_points * 48
    store = InfluxStore(url, database="simbackfill")
    try:
        assert store.count(start=epoch(2026, 7, 1), end=epoch(2026, 7, 2)) == n_points * 48
        last = store.latest(["jiefangbei-tower/em-main-kwh"])["jiefangbei-tower/em-main-kwh"]
        assert last.value > 1e5
    finally:
        store.close()


def test_bad_scenario_fails_before_writing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults:\n  - kind: smoke\n    target: nowhere/x\n    start: +1h\n")
    out = subprocess.run([*RETROFIT, "backfill", "--site", str(SAMPLE), "--from", "2026-03-01", "--to",
                          "2026-03-02", "--scenario", str(bad)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "RETROFIT_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
                         timeout=120)
    assert out.returncode == 2
    assert f"{bad}:4: faults[0].target" in out.stderr
    assert not (tmp_path / "telemetry.db").exists()


def test_out_of_range_fault_parameter_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """The `drop: 4` that once drove phase B to 0 V: percent is percent, 400 % is out of range, nothing written."""
    bad = tmp_path / "unbalance.yaml"
    bad.write_text("name: x\nfaults:\n  - kind: voltage_unbalance\n    target: jiefangbei-tower/meter-main\n"
                   "    start: 2026-03-01T10:00\n    params:\n      drop: 400\n"
                   "  - {kind: voltage_unbalance, target: jiefangbei-tower/meter-main, start: +1h,\n"
                   "     params: {drop: 0.04}}\n")
    out = subprocess.run([*RETROFIT, "backfill", "--site", str(SAMPLE), "--from", "2026-03-01", "--to",
                          "2026-03-02", "--scenario", str(bad)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "RETROFIT_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
                         timeout=120)
    assert out.returncode == 2
    err = " ".join(out.stderr.split())
    assert (f"{bad}:7: faults[0].params.drop: voltage_unbalance parameter drop: 400 % is out of range; "
            "allowed 0.5 to 30 %") in err, err
    assert f"{bad}:9: faults[1].params.drop: voltage_unbalance parameter drop: 0.04 looks like a fraction" in err
    assert not (tmp_path / "telemetry.db").exists()


def test_in_memory_history_is_sorted_and_complete(site: Site) -> None:
    start = epoch(2026, 5, 4)
    batches = list(generate(site, start, start + 86400, step_s=3600, seed=0, sort=True, chunk_days=1))
    readings = [r for b in batches for r in b]
    assert len(readings) == len(site.points) * 24
    ts = [r.ts for r in readings]
    assert ts == sorted(ts)


@pytest.mark.parametrize("step", [300.0])
def test_finer_steps_interpolate(site: Site, step: float) -> None:
    start = epoch(2026, 5, 4, 9)
    readings = [r for b in generate(site, start, start + 3600, step_s=step, buildings=["jiefangbei-tower"])
                for r in b if r.point == "jiefangbei-tower/em-main-kwh"]
    assert len(readings) == 12 and all(b.value >= a.value for a, b in zip(readings, readings[1:], strict=False))


def test_backfill_older_than_influx_retention_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETROFIT_")}
    env.update(PYTHONPATH=str(ROOT), RETROFIT_DATA_DIR=str(tmp_path), RETROFIT_INFLUX_URL="http://127.0.0.1:9",
               RETROFIT_INFLUX_RAW_RETENTION="30d")
    out = subprocess.run([*RETROFIT, "backfill", "--site", str(SAMPLE), "--from", "2025-01-01", "--to", "2025-01-02"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "retention" in out.stderr
