"""One savings function: `retrofit savings`, the subsidy check, the dashboard's savings view and the API give
the same avoided kWh and savings % for each retrofitted sample building on the same backfilled store, on both
store kinds (the embedded SQLite store and a real influxd). The periods are the defaults of all four (the year
before and the year after the retrofit date), so none of them is told the same period by hand."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from typer.testing import CliRunner

from buildings.records.base import make_engine
from buildings.site import Site, load_site
from insight.savings import TemperatureSource, daily_series, default_periods
from retrofit.cli import app
from simulators.points import SitePhysics
from telemetry.store import Store
from tests.savings_history import CASES, SEED, write_history

POLICY = "CQ-YZ-OLDBLDG-SMART-DEMO"
PASSWORD = "correct-horse-battery"
_dbs = itertools.count(1)


@dataclass
class Env:
    site: Site
    data_dir: Path
    records_url: str
    env: dict[str, str]
    store: Store
    token: str


def _open_store(kind: str, data_dir: Path, request: pytest.FixtureRequest) -> tuple[Store, dict[str, str]]:
    if kind == "embedded":
        from telemetry.embedded import EmbeddedStore

        return EmbeddedStore(data_dir / "telemetry.db"), {}
    from telemetry.influx import InfluxStore

    port = request.getfixturevalue("influxd").port
    db = f"one_savings_{next(_dbs)}"
    url = f"http://127.0.0.1:{port}"
    # the history is two years back from a fixed date: keep raw readings long enough to hold it (the
    # commands and the dashboard open the store with the same retention, so they do not shorten it)
    return InfluxStore(url, database=db, raw_retention="3650d"), {
        "RETROFIT_INFLUX_URL": url, "RETROFIT_INFLUX_DATABASE": db, "RETROFIT_INFLUX_RAW_RETENTION": "3650d"}


@pytest.fixture(scope="module", params=["embedded", "influx"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        sample_site_path: Path) -> Iterator[Env]:
    """Two years of meter and weather history of both retrofitted buildings, the programme imported, a
    district user and a district API token."""
    from api.tokens import create_token
    from buildings.records.program import import_sample
    from dashboard.auth import add_user

    data_dir = tmp_path_factory.mktemp(f"one-savings-{request.param}")
    site = load_site(str(sample_site_path))
    store, extra = _open_store(request.param, data_dir, request)
    ph = SitePhysics(site, seed=SEED)
    for bid, (base, rep) in CASES.items():
        write_history(store, site, ph, bid, base[0], rep[1])
    url = f"sqlite:///{data_dir / 'records.db'}"
    engine = import_sample(url, site, "tests")
    add_user(engine, "dora", PASSWORD, "district")
    _rec, token = create_token(engine, "dora-api", "district", days=1)
    engine.dispose()
    (data_dir / "none.toml").write_text("", encoding="utf-8")
    env = {"RETROFIT_DATA_DIR": str(data_dir), "RETROFIT_SITE": str(sample_site_path),
           "RETROFIT_CONFIG": str(data_dir / "none.toml"), "RETROFIT_RECORDS_URL": url, **extra}
    yield Env(site, data_dir, url, env, store, token)
    store.close()


@pytest.fixture()
def settings_env(env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Env:
    for k in ("RETROFIT_INFLUX_URL", "RETROFIT_INFLUX_DATABASE", "RETROFIT_INFLUX_RAW_RETENTION"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    return env


def _cli(env: Env, bid: str) -> tuple[dict, dict]:
    """`retrofit savings --record --json` with the default periods, then `retrofit subsidy check --json`."""
    runner = CliRunner()
    r = runner.invoke(app, ["savings", "--building", bid, "--site", env.env["RETROFIT_SITE"], "--record",
                             "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    text = runner.invoke(app, ["savings", "--building", bid, "--site", env.env["RETROFIT_SITE"]]).output
    assert f"avoided {out['avoided_kwh']:,.0f} kWh" in text and "(building sensor)" in text, text
    r = runner.invoke(app, ["subsidy", "check", "--building", bid, "--policy", POLICY, "--json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.output)


def _api(env: Env, bid: str) -> dict:
    from api.app import create_app
    from tests.api.conftest import serve

    engine = make_engine(env.records_url)
    try:
        with serve(create_app(env.site, engine, env.store)) as base:
            r = requests.get(f"{base}/api/v1/buildings/{bid}/savings",
                             headers={"Authorization": f"Bearer {env.token}"}, timeout=120)
    finally:
        engine.dispose()
    assert r.status_code == 200, r.text
    return r.json()


def _dashboard(bid: str) -> tuple[str, str, str]:
    """(savings metric value, its delta, the caption) of the energy page's savings tab."""
    from tests.dashboard.conftest import sign_in

    at = sign_in("dora", PASSWORD, query={"building": bid})
    at.switch_page("pages/energy.py").run(timeout=180)
    assert not at.exception, at.exception
    m = next(m for m in at.metric if m.label == "节能量")
    cap = next(c.value for c in at.caption if "IPMVP" in c.value)
    return m.value, m.proto.delta, cap


@pytest.mark.parametrize("bid", list(CASES))
def test_cli_subsidy_dashboard_and_api_agree(settings_env: Env, bid: str) -> None:
    from buildings.records import queries as q
    from buildings.records.base import session_factory
    from dashboard.i18n import Tr

    out, check = _cli(settings_env, bid)
    base, rep = CASES[bid]
    assert out["reporting_period"] == [str(rep[0]), str(rep[1])] and out["baseline"]["period"] == [
        str(base[0]), str(base[1])]
    assert out["adequate"] and out["avoided_kwh"] > 0
    assert out["evidence"]["temperature_source"] == "building"
    # the subsidy check judges on the recorded result of that same run
    cond = next(c for c in check["conditions"] if c["field"] == "savings.measured_pct")
    assert round(100 * cond["actual"], 2) == out["savings_pct"]
    engine = make_engine(settings_env.records_url)
    with session_factory(engine)() as s:
        rec = q.latest_savings(s, bid)
        assert rec is not None and round(rec.avoided_kwh, 1) == out["avoided_kwh"]
    engine.dispose()
    api = _api(settings_env, bid)
    assert (api["avoided_kwh"], api["savings_pct"]) == (out["avoided_kwh"], out["savings_pct"])
    assert api["evidence"] == out["evidence"]
    value, delta, caption = _dashboard(bid)
    t = Tr("zh")
    assert value == f"{t.num(out['avoided_kwh'], 0)} kWh"
    assert delta == t.pct(cond["actual"])  # the unrounded fraction the subsidy is judged on
    assert f"{rep[0]}..{rep[1]}" in caption


def test_outdoor_temperature_falls_back_to_the_district_and_says_so(env: Env) -> None:
    """huaxin-building has no outdoor sensor of its own: a district one with history is used, and named."""
    first, last = CASES["jiefangbei-tower"][1][0], CASES["jiefangbei-tower"][1][0] + dt.timedelta(days=6)
    s, ev = daily_series(env.store, env.site, "jiefangbei-tower", first, last)
    assert ev.temperature_source is TemperatureSource.BUILDING and np.isfinite(s.temp).all()
    s2, ev2 = daily_series(env.store, env.site, "huaxin-building", first, last)
    assert ev2.temperature_source is TemperatureSource.DISTRICT and not ev2.temperature_point.startswith("huaxin")
    assert np.isfinite(s2.temp).all() and abs(float(np.mean(s2.temp - s.temp))) < 1.0  # the same weather
    assert np.isnan(s2.energy).all()  # no meter history there: days stay NaN, never zero


def test_an_owner_is_not_told_whose_sensor_the_district_fallback_is(env: Env) -> None:
    from buildings.access import Principal, Role
    from insight.savings import DISTRICT_SENSOR, SavingsEvidence, shown_evidence
    from insight.scope import Scope

    ev = SavingsEvidence("huaxin-building/em-main-kwh", "jiefangbei-tower/ahu1-oat", TemperatureSource.DISTRICT)
    owner = Scope(principal=Principal("f03", Role.OWNER, "f03-individuals"), site=env.site)
    district = Scope(principal=Principal("dora", Role.DISTRICT), site=env.site)
    assert "huaxin-building" in owner.building_ids and "jiefangbei-tower" not in owner.building_ids
    assert shown_evidence(ev, owner).temperature_point == DISTRICT_SENSOR
    assert shown_evidence(ev, owner).temperature_source is TemperatureSource.DISTRICT
    assert shown_evidence(ev, district) == ev


def test_default_periods_are_the_years_around_the_retrofit(env: Env) -> None:
    assert default_periods(env.site, "daping-makerworks", dt.date(2027, 1, 1)) == CASES["daping-makerworks"]
    # while the reporting year runs, it ends yesterday
    assert default_periods(env.site, "daping-makerworks", dt.date(2026, 1, 1))[1] == (
        dt.date(2025, 10, 15), dt.date(2025, 12, 31))
