"""Measured savings against the simulator's truth: the physics runs each building with and without its
retrofit, so the real avoided energy is known (simulators/savings.py). History goes through a real telemetry
store (the embedded SQLite store) and the same daily aggregation the `retrofit savings` command uses."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from typer.testing import CliRunner

from buildings.savings import BaselineError
from buildings.site import Site, load_site
from retrofit.cli import app
from retrofit.cmd_program import measure_building, outdoor_temp_points, total_meter_point
from simulators.points import SitePhysics
from simulators.savings import true_savings
from telemetry.embedded import EmbeddedStore
from telemetry.reading import Reading
from tests.records.conftest import ROOT

TZ = ZoneInfo("Asia/Shanghai")
D = dt.date
# building, baseline (12 months before its retrofit_date), reporting (12 months after)
CASES = {
    "daping-makerworks": ((D(2024, 10, 15), D(2025, 10, 14)), (D(2025, 10, 15), D(2026, 10, 14))),
    "jiefangbei-tower": ((D(2024, 7, 1), D(2025, 6, 30)), (D(2025, 7, 1), D(2026, 6, 30))),
}
SEED = 0


def _ts(d: dt.date) -> float:
    return dt.datetime.combine(d, dt.time(), TZ).timestamp()


def _write_history(store: EmbeddedStore, site: Site, ph: SitePhysics, bid: str, first: dt.date, last: dt.date,
                   extra_kwh_per_day: np.ndarray | None = None) -> None:
    """Hourly main-meter counter and outdoor temperature from the physics (only the points M&V needs)."""
    keys = [total_meter_point(site, bid), outdoor_temp_points(site, bid)[0]]
    t_all = np.arange(_ts(first) - 3600, _ts(last + dt.timedelta(days=1)) + 1, 3600.0)
    for c in range(0, len(t_all), 24 * 60):
        t = t_all[c:c + 24 * 60]
        values, _q = ph.evaluate(bid, t)
        counter = values[keys[0]]
        if extra_kwh_per_day is not None:  # a non-routine load switching on and off: a noisy baseline
            day = ((t - t_all[0]) // 86400).astype(int).clip(0, len(extra_kwh_per_day) - 1)
            counter = counter + np.cumsum(extra_kwh_per_day[day] / 24)
        store.write([Reading(keys[0], a, b) for a, b in zip(t.tolist(), counter.tolist(), strict=True)]
                    + [Reading(keys[1], a, b) for a, b in zip(t.tolist(), values[keys[1]].tolist(), strict=True)])


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(str(ROOT / "buildings" / "sites" / "yuzhong"))


@pytest.fixture(scope="module")
def history(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir whose embedded store holds two years of both buildings' meter and weather history."""
    data = tmp_path_factory.mktemp("data")
    store = EmbeddedStore(data / "telemetry.db")
    ph = SitePhysics(site, seed=SEED)
    for bid, (base, rep) in CASES.items():
        _write_history(store, site, ph, bid, base[0], rep[1])
    store.close()
    yield data


@pytest.mark.parametrize("bid", list(CASES))
def test_measured_savings_within_2pp_of_truth(history: Path, site: Site, bid: str) -> None:
    base, rep = CASES[bid]
    store = EmbeddedStore(history / "telemetry.db", readonly=True)
    result, evidence = measure_building(store, site, bid, base, rep)
    store.close()
    truth = true_savings(site, bid, _ts(rep[0]), _ts(rep[1] + dt.timedelta(days=1)), seed=SEED)
    assert truth.fraction > 0.05  # the retrofit really saves something
    assert abs(result.savings_fraction - truth.fraction) < 0.02, (result.savings_fraction, truth.fraction)
    b = result.baseline
    assert b.meets_g14 and b.stats.cv_rmse < 0.30 and abs(b.stats.nmbe) < 0.10 and b.days == 365
    assert result.adequate and result.fsu["68"] < result.fsu["90"] < 0.5
    d = result.as_dict()
    assert {"cv_rmse", "nmbe", "r2"} <= set(d["baseline"]["stats"]) and d["baseline"]["g14_limits"]["cv_rmse"] == 0.3
    assert "em-main-kwh" in evidence["energy"] and "occupied hours" in evidence["occupancy"]


def test_too_short_baseline_refused(history: Path, site: Site) -> None:
    store = EmbeddedStore(history / "telemetry.db", readonly=True)
    with pytest.raises(BaselineError, match="too short: 184 days"):
        measure_building(store, site, "daping-makerworks", (D(2025, 4, 14), D(2025, 10, 14)),
                         CASES["daping-makerworks"][1])
    store.close()


def test_baseline_must_precede_retrofit_and_reporting(history: Path, site: Site) -> None:
    store = EmbeddedStore(history / "telemetry.db", readonly=True)
    with pytest.raises(BaselineError, match="contains the retrofit date 2025-10-15"):
        measure_building(store, site, "daping-makerworks", (D(2024, 11, 1), D(2025, 10, 31)),
                         (D(2025, 11, 1), D(2026, 10, 14)))
    with pytest.raises(BaselineError, match="inside the baseline"):
        measure_building(store, site, "daping-makerworks", CASES["daping-makerworks"][0],
                         (D(2025, 10, 1), D(2026, 10, 14)))
    store.close()


def test_too_noisy_baseline_refused(site: Site, tmp_path: Path) -> None:
    bid = "daping-makerworks"
    (b0, b1), rep = CASES[bid]
    store = EmbeddedStore(tmp_path / "noisy.db")
    rng = np.random.default_rng(7)
    extra = rng.exponential(1500.0, (rep[1] - b0).days + 2)  # ~75 % of a mean day's use, switching at random
    _write_history(store, site, SitePhysics(site, seed=SEED), bid, b0, rep[1], extra)
    with pytest.raises(BaselineError, match=r"too noisy for a daily model: CV\(RMSE\)") as info:
        measure_building(store, site, bid, (b0, b1), rep)
    assert info.value.stats["cv_rmse"] > 0.30
    store.close()


def test_savings_command_records_result(history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(history))
    monkeypatch.setenv("RETROFIT_RECORDS_URL", f"sqlite:///{tmp_path / 'records.db'}")
    monkeypatch.setenv("RETROFIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["program", "import"]).exit_code == 0
    r = runner.invoke(app, ["savings", "--building", "daping-makerworks", "--baseline", "2024-10-15:2025-10-14",
                            "--reporting", "2025-10-15:2026-10-14", "--record", "--project", "dp-2025-led-vfd",
                            "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["adequate"] and 20 < out["savings_pct"] < 27 and out["baseline"]["meets_g14"]
    # the eligibility engine now judges the savings condition on the measured number
    r = runner.invoke(app, ["subsidy", "check", "--building", "daping-makerworks", "--policy",
                            "CQ-YZ-OLDBLDG-SMART-DEMO", "--as-of", "2026-11-26", "--json"])
    e = json.loads(r.output)
    sv = next(c for c in e["conditions"] if c["field"] == "savings.measured_pct")
    assert sv["status"] == "pass" and "source telemetry" in sv["evidence"]
    assert e["verdict"] == "eligible"  # 23.8 % measured, adequate: band 20-30 % -> 8,600 m2 x 30
    assert e["amount"]["capped"] == pytest.approx(258_000)  # capped at 30 % of the 860,000 cost
    assert e["tranches"][1]["status"] == "locked"  # the M&V report and subsidy-claim stages are still open
    r = runner.invoke(app, ["program", "rank", "--measured-eui", "2025-10-15:2026-10-14", "--as-of", "2026-11-26",
                            "--json"])
    rows = {x["building_id"]: x for x in json.loads(r.output)}
    kwh = out["actual_kwh"] / 8600  # the reporting year's metered use over the floor area
    assert rows["daping-makerworks"]["eui_kwh_m2a"] == pytest.approx(kwh, rel=0.01)
    assert any("metered 2025-10-15..2026-10-14" in n for n in rows["daping-makerworks"]["notes"])
    assert rows["huaxin-building"]["eui_kwh_m2a"] == 118  # no history: the billed EUI stays
    r = runner.invoke(app, ["savings", "--building", "daping-makerworks", "--baseline", "2025-04-15:2025-10-14",
                            "--reporting", "2025-10-15:2026-10-14"])
    assert r.exit_code == 2 and "baseline refused: baseline too short" in r.output
