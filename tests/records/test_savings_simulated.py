"""Measured savings against the simulator's truth: the physics runs each building with and without its
retrofit, so the real avoided energy is known (simulators/savings.py). History goes through a real telemetry
store (the embedded SQLite store) and the same daily aggregation the `retrofit savings` command uses."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from buildings.savings import BaselineError
from buildings.site import Site, load_site
from insight.savings import TemperatureSource, measure
from retrofit.cli import app
from simulators.points import SitePhysics
from simulators.savings import true_savings
from telemetry.embedded import EmbeddedStore
from tests.records.conftest import ROOT
from tests.savings_history import CASES, SEED, D, ts, write_history


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
        write_history(store, site, ph, bid, base[0], rep[1])
    store.close()
    yield data


@pytest.mark.parametrize("bid", list(CASES))
def test_measured_savings_within_2pp_of_truth(history: Path, site: Site, bid: str) -> None:
    base, rep = CASES[bid]
    store = EmbeddedStore(history / "telemetry.db", readonly=True)
    measured = measure(store, site, bid, base, rep)
    store.close()
    result, evidence = measured.result, measured.evidence.as_dict()
    assert measured.evidence.temperature_source is TemperatureSource.BUILDING
    truth = true_savings(site, bid, ts(rep[0]), ts(rep[1] + dt.timedelta(days=1)), seed=SEED)
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
        measure(store, site, "daping-makerworks", (D(2025, 4, 14), D(2025, 10, 14)),
                         CASES["daping-makerworks"][1])
    store.close()


def test_baseline_must_precede_retrofit_and_reporting(history: Path, site: Site) -> None:
    store = EmbeddedStore(history / "telemetry.db", readonly=True)
    with pytest.raises(BaselineError, match="contains the retrofit date 2025-10-15"):
        measure(store, site, "daping-makerworks", (D(2024, 11, 1), D(2025, 10, 31)),
                         (D(2025, 11, 1), D(2026, 10, 14)))
    with pytest.raises(BaselineError, match="inside the baseline"):
        measure(store, site, "daping-makerworks", CASES["daping-makerworks"][0],
                         (D(2025, 10, 1), D(2026, 10, 14)))
    store.close()


def test_too_noisy_baseline_refused(site: Site, tmp_path: Path) -> None:
    bid = "daping-makerworks"
    (b0, b1), rep = CASES[bid]
    store = EmbeddedStore(tmp_path / "noisy.db")
    rng = np.random.default_rng(7)
    extra = rng.exponential(1500.0, (rep[1] - b0).days + 2)  # ~75 % of a mean day's use, switching at random
    write_history(store, site, SitePhysics(site, seed=SEED), bid, b0, rep[1], extra)
    with pytest.raises(BaselineError, match=r"too noisy for a daily model: CV\(RMSE\)") as info:
        measure(store, site, bid, (b0, b1), rep)
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
