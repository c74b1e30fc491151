"""Each fault of the list changes what it should, in the physics, and scenario files fail clearly."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from buildings.site import Site, SiteError
from retrofit.history import generate
from simulators.faults import KINDS, FaultKind, ground_truth, load_scenario
from simulators.points import SitePhysics
from simulators.site_sim import SiteSimulation
from simulators.values import DeviceMode
from telemetry.reading import Quality
from tests.simulators_physics.conftest import epoch

ROOT = Path(__file__).resolve().parents[2]
MARCH = ROOT / "simulators" / "scenarios" / "march-2026-all-faults.yaml"


@pytest.fixture(scope="module")
def faulty(site: Site) -> tuple[SitePhysics, dict]:
    sc = load_scenario(str(MARCH), site)
    faults = sc.resolve(epoch(2026, 3, 1))
    return SitePhysics(site, seed=0, faults=faults), {f.id: f for f in faults}


def window(ph: SitePhysics, clean: SitePhysics, fault, pad_h: float = 2.0) -> tuple[np.ndarray, dict, dict, dict]:
    """Both physics over the fault window plus padding: (t, faulty values, clean values, quality)."""
    b = fault.target.split("/")[0]
    end = fault.end if not math.isinf(fault.end) else fault.start + 6 * 3600
    t = np.arange(fault.start - pad_h * 3600, end + pad_h * 3600, 900.0)
    v, q = ph.evaluate(b, t)
    c, _ = clean.evaluate(b, t)
    return t, v, c, q


def test_every_required_fault_kind_is_in_the_sample_scenario(faulty) -> None:
    kinds = {f.kind for f in faulty[1].values()}
    assert kinds == set(FaultKind)


def test_sensor_faults_change_only_the_sensor(faulty, physics: SitePhysics) -> None:
    ph, fs = faulty
    f = fs["stuck-sat"]
    t, v, c, _ = window(ph, physics, f)
    k = "jiefangbei-tower/ahu2-sat"
    inside = (t >= f.start) & (t < f.end)
    assert np.ptp(v[k][inside]) == 0.0 and np.ptp(c[k][inside]) > 0.5
    assert np.array_equal(v[k][~inside], c[k][~inside])
    assert np.array_equal(v["jiefangbei-tower/ahu2-mat"], c["jiefangbei-tower/ahu2-mat"])
    f = fs["drift-zat"]
    t, v, c, _ = window(ph, physics, f)
    k = "jiefangbei-tower/vav-09n-zat"
    d = v[k] - c[k]
    assert d[-1] == 0.0 and 7.0 < d[(t < f.end)].max() <= 8.0  # 4 K/day for 2 days
    f = fs["spike-mat"]
    t, v, c, _ = window(ph, physics, f)
    k = "chaotianmen-harbour/ahul-mat"
    jumps = np.abs(v[k] - c[k])
    assert (jumps > 15).sum() >= 2 and jumps[(t < f.start) | (t >= f.end)].max() == 0.0


def test_device_faults_give_comm_failures_and_errors(faulty, physics: SitePhysics, site: Site) -> None:
    ph, fs = faulty
    f = fs["rtu2-offline"]
    t, _, _, q = window(ph, physics, f)
    inside = (t >= f.start) & (t < f.end)
    assert set(q) == {r.key for r in site.points_of_device("daping-makerworks/rtu-2-ctl")}
    assert all(np.all(a[inside] == 1) and np.all(a[~inside] == 0) for a in q.values())
    f = fs["meter-errors"]
    t, _, _, q = window(ph, physics, f)
    assert all(np.all(a[(t >= f.start) & (t < f.end)] == 2) for a in q.values())
    readings = [r for batch in generate(site, f.start, f.start + 1800, faults=list(fs.values()),
                                        buildings=["huaxin-building"], physics=ph) for r in batch]
    bad = [r for r in readings if r.point.startswith("huaxin-building/em-roof-ac")]
    assert bad and all(r.quality is Quality.BAD and r.value is None for r in bad)
    sim = SiteSimulation(site, seed=0, start=fs["rtu2-offline"].start + 60, faults=list(fs.values()),
                         clock=lambda: 0.0)
    assert sim.device_mode("daping-makerworks/rtu-2-ctl") is DeviceMode.OFFLINE
    assert sim.device_mode("daping-makerworks/rtu-1-ctl") is DeviceMode.OK
    assert sim.value("daping-makerworks/rtu2-sat") is None


def test_hvac_faults_act_in_the_physics(faulty, physics: SitePhysics) -> None:
    ph, fs = faulty
    jt = "jiefangbei-tower/"
    f = fs["ahu3-night"]
    t, v, c, _ = window(ph, physics, f, pad_h=0)
    assert v[jt + "ahu3-sf-sts"].mean() > 0.9 and c[jt + "ahu3-sf-sts"].mean() < 0.1
    assert v[jt + "em-hvac-p"].sum() > 1.2 * c[jt + "em-hvac-p"].sum()  # energy rises at the meter
    assert v[jt + "em-main-kwh"][-1] - v[jt + "em-main-kwh"][0] > c[jt + "em-main-kwh"][-1] - c[jt + "em-main-kwh"][0]
    f = fs["ahul-heat-cool"]
    t, v, c, _ = window(ph, physics, f, pad_h=0)
    ch = "chaotianmen-harbour/"
    assert np.all(v[ch + "ahul-hw-vlv"][:-1] >= 59) and np.mean(v[ch + "ahul-chw-vlv"] > 2) > 0.9
    assert v[ch + "em-hvac-p"].sum() > c[ch + "em-hvac-p"].sum()
    f = fs["ahu1-damper"]
    t, v, c, _ = window(ph, physics, f, pad_h=0)
    on = c[jt + "ahu1-sf-sts"] > 0.5
    assert np.array_equal(v[jt + "ahu1-oad"], c[jt + "ahu1-oad"])  # the command did not change ...
    oat, rat = v[jt + "ahu1-oat"][on], v[jt + "ahu1-rat"][on]
    oa_frac = (v[jt + "ahu1-mat"][on] - rat) / (oat - rat)
    assert np.median(oa_frac) > 0.8 > np.median((c[jt + "ahu1-mat"][on] - rat) / (oat - rat))  # ... the air did
    f = fs["ahu2-static"]
    t, v, c, _ = window(ph, physics, f, pad_h=0)
    on = v[jt + "ahu2-sf-sts"] > 0.5
    assert np.all(v[jt + "ahu2-sf-spd"][on] >= 99)
    assert np.all(v[jt + "ahu2-dsp"][on] < v[jt + "ahu2-dsp-sp"][on] - 25)  # G36 FC1
    assert v[jt + "vav-07s-zat"][on].mean() >= c[jt + "vav-07s-zat"][on].mean()


def test_safety_faults(faulty, physics: SitePhysics) -> None:
    ph, fs = faulty
    t, v, c, _ = window(ph, physics, fs["swr-hot"], pad_h=0)
    assert v["jiefangbei-tower/swr-temp"].max() > 40 > c["jiefangbei-tower/swr-temp"].max()
    t, v, c, _ = window(ph, physics, fs["garage-co"], pad_h=0)
    ch = "chaotianmen-harbour/"
    assert v[ch + "gar-b2-co-e"].max() > 100 > 25 > c[ch + "gar-b2-co-e"].max()
    assert v[ch + "gfan-b2-sts"].mean() > c[ch + "gfan-b2-sts"].mean()  # the garage fans respond
    t, v, c, _ = window(ph, physics, fs["zone-co2"], pad_h=0)
    assert v["jiefangbei-tower/vav-05n-co2"].max() > 1200 and c["jiefangbei-tower/vav-05n-co2"].max() < 1000
    t, v, c, _ = window(ph, physics, fs["riser-leak"], pad_h=0)
    hx = "huaxin-building/"
    assert v[hx + "leak-riser-10-wet"][:-1].min() == 1.0 and c[hx + "leak-riser-10-wet"].max() == 0.0
    assert v[hx + "wm-m3"][-1] - v[hx + "wm-m3"][0] > c[hx + "wm-m3"][-1] - c[hx + "wm-m3"][0] + 4.0
    t, v, c, _ = window(ph, physics, fs["workshop-smoke"], pad_h=0)
    assert v["daping-makerworks/smoke-workshop-alarm"].max() == 1.0
    t, v, c, _ = window(ph, physics, fs["kitchen-gas"], pad_h=0)
    assert v[ch + "kit-gas-1"].max() > 25 and c[ch + "kit-gas-1"].max() < 10
    t, v, c, _ = window(ph, physics, fs["main-unbalance"], pad_h=0)
    volts = np.array([v[f"jiefangbei-tower/em-main-u{p}"] for p in "abc"])
    unb = (np.abs(volts - volts.mean(0)).max(0) / volts.mean(0)).max()
    clean = np.array([c[f"jiefangbei-tower/em-main-u{p}"] for p in "abc"])
    assert unb > 0.03 and (np.abs(clean - clean.mean(0)).max(0) / clean.mean(0)).max() < 0.01
    # drop is in percent: the sample's 6 % sags phase B by 6 %, not to 0 V (the old fraction reading of drop: 4)
    assert unb < 0.05 and (volts[1] > 0.9 * volts[0]).all()


def test_meter_faults(faulty, physics: SitePhysics) -> None:
    ph, fs = faulty
    f = fs["main-spike"]
    t, v, c, _ = window(ph, physics, f)
    k = "huaxin-building/em-main-p"
    inside = (t >= f.start) & (t < f.end)
    assert np.allclose(v[k][inside], 8 * c[k][inside]) and np.array_equal(v[k][~inside], c[k][~inside])
    f = fs["kwh-reset"]
    t, v, c, _ = window(ph, physics, f)
    k = "chaotianmen-harbour/em-main-kwh"
    after = t >= f.start
    assert v[k][after][0] < 1.0 < 1e5 < v[k][~after][-1]
    assert np.all(np.diff(v[k][after]) >= 0)
    assert np.allclose(np.diff(v[k][after]), np.diff(c[k][after]))


def test_ground_truth_is_data(faulty, site: Site) -> None:
    truth = ground_truth(list(faulty[1].values()), site)
    assert len(truth) == len(faulty[1])
    for g in truth:
        assert g["points"] and all(p in site.points for p in g["points"])
        assert g["family"] in ("sensor_health", "energy", "safety") and g["rule"]
        assert g["kind"] in {k.value for k in KINDS}
    co2 = next(g for g in truth if g["kind"] == "co2_high")
    assert co2["points"] == ["jiefangbei-tower/vav-05n-co2"] and co2["rule"] == "S-5"


def test_live_inject_and_clear(site: Site) -> None:
    now = [0.0]
    sim = SiteSimulation(site, seed=0, speed=60, start=epoch(2026, 3, 10, 10.0), clock=lambda: now[0])
    k = "jiefangbei-tower/swr-temp"
    before, kwh = sim.value(k), sim.value("jiefangbei-tower/em-main-kwh")
    f = sim.inject("switch_room_overheat", "jiefangbei-tower/switch-room")
    now[0] += 180  # 3 simulated hours
    assert sim.value(k) > before + 6
    assert sim.value("jiefangbei-tower/em-main-kwh") > kwh  # counters keep counting across an injection
    assert [x.id for x in sim.active_faults()] == [f.id]
    sim.inject("device_offline", "jiefangbei-tower/ahu-1-ctl", duration_s=600)
    assert sim.device_mode("jiefangbei-tower/ahu-1-ctl") is DeviceMode.OFFLINE
    now[0] += 20  # 20 simulated minutes: the offline fault has ended
    assert sim.device_mode("jiefangbei-tower/ahu-1-ctl") is DeviceMode.OK
    assert sim.clear(target="jiefangbei-tower/switch-room")
    now[0] += 1
    assert sim.active_faults() == []
    with pytest.raises(SiteError, match="cannot act on"):
        sim.inject("co_garage", "jiefangbei-tower/switch-room")


BAD_SCENARIOS = {
    "kind": ("name: x\nfaults:\n  - kind: sensor_stuk\n    target: jiefangbei-tower/ahu1-sat\n    start: +1h\n",
             3, "faults[0].kind"),
    "target": ("name: x\nfaults:\n  - kind: sensor_stuck\n    target: jiefangbei-tower/nope\n    start: +1h\n",
               4, "faults[0].target"),
    "start": ("name: x\nfaults:\n  - kind: smoke\n    target: jiefangbei-tower/swr-smoke\n    start: soon\n",
              5, "faults[0].start"),
    "param": ("name: x\nfaults:\n  - kind: smoke\n    target: jiefangbei-tower/swr-smoke\n    start: +1h\n"
              "    params: {volume: 3}\n", 6, "faults[0].params.volume"),
    # the drop: 4 that drove phase B to 0 V: percent is written as percent, and 400 % is out of range
    "param-range": ("name: x\nfaults:\n  - kind: voltage_unbalance\n    target: jiefangbei-tower/meter-main\n"
                    "    start: +1h\n    params:\n      drop: 40\n", 7, "faults[0].params.drop"),
    "param-fraction": ("name: x\nfaults:\n  - kind: voltage_unbalance\n    target: jiefangbei-tower/meter-main\n"
                       "    start: +1h\n    params: {drop: 0.06}\n", 6, "faults[0].params.drop"),
    "param-unit": ("name: x\nfaults:\n  - kind: co_garage\n    target: chaotianmen-harbour/garage-b2\n"
                   "    start: +1h\n    params: {max: 220 %}\n", 6, "faults[0].params.max"),
    "param-point": ("name: x\nfaults:\n  - kind: sensor_stuck\n    target: jiefangbei-tower/ahu2-sat\n"
                    "    start: +1h\n    params: {value: 85}\n", 6, "faults[0].params.value"),
    "extra": ("name: x\nfault:\n  - kind: smoke\n", 2, "fault"),
    "fits": ("name: x\nfaults:\n  - kind: stuck_oa_damper\n    target: jiefangbei-tower/vav-05n\n    start: +1h\n",
             4, "faults[0].target"),
    "yaml": ("name: x\nfaults:\n  - kind: [smoke\n", 4, "(yaml)"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_scenario_errors_name_file_line_and_field(case: str, tmp_path: Path, site: Site) -> None:
    text, line, field = BAD_SCENARIOS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SiteError) as exc:
        load_scenario(str(path), site)
    msg = str(exc.value)
    assert f"{path}:{line}: {field}" in msg, msg


@pytest.mark.parametrize(("written", "expected"), [
    ("drop: 40", "40 % is out of range; allowed 0.5 to 30 %"),
    ("drop: 0.06", "0.06 looks like a fraction, but this parameter is in %: write 6 for 6 %"),
    ("drop: 6 V", "'6 V' has the wrong unit; this parameter is in %"),
    ("drop: '-3'", "-3 % is out of range"),
])
def test_fault_parameter_refusals_say_the_unit_and_range(written: str, expected: str, tmp_path: Path,
                                                         site: Site) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nfaults:\n  - kind: voltage_unbalance\n    target: jiefangbei-tower/meter-main\n"
                    f"    start: +1h\n    params: {{{written}}}\n", encoding="utf-8")
    with pytest.raises(SiteError) as exc:
        load_scenario(str(path), site)
    msg = str(exc.value)
    assert f"{path}:6: faults[0].params.drop: voltage_unbalance parameter drop: {expected}" in msg, msg


def test_every_fault_parameter_declares_a_unit_and_its_default_is_in_range() -> None:
    for kind, info in KINDS.items():
        for name, p in info.params.items():
            assert p.unit, (kind, name)
            if not math.isnan(p.default) and p.default != 0.0:  # 0 / NaN: "derive from the point's range"
                assert p.lo <= p.default <= p.hi, (kind, name)


def test_percent_with_its_unit_is_read_as_percent(tmp_path: Path, site: Site) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: x\nfaults:\n  - kind: voltage_unbalance\n    target: jiefangbei-tower/meter-main\n"
                    "    start: +1h\n    params: {drop: 4 %}\n", encoding="utf-8")
    (f,) = load_scenario(str(path), site).resolve(0.0)
    assert f.params == {"drop": 4.0} and f.param("drop") == 4.0


def test_point_unit_parameters_fit_the_point_range(tmp_path: Path, site: Site) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text("name: x\nfaults:\n  - {kind: sensor_drift, target: jiefangbei-tower/ahu2-sat, start: +1h,\n"
                    "     params: {rate_per_day: -400}}\n", encoding="utf-8")
    with pytest.raises(SiteError) as exc:
        load_scenario(str(path), site)
    assert (f"{path}:4: faults[0].params.rate_per_day: sensor_drift parameter rate_per_day: -400 degC does not fit "
            "jiefangbei-tower/ahu2-sat's declared range [0, 50]; allowed -50 to 50 degC") in str(exc.value)
    path.write_text("name: x\nfaults:\n  - {kind: sensor_drift, target: jiefangbei-tower/ahu2-sat, start: +1h,\n"
                    "     params: {rate_per_day: -4}}\n", encoding="utf-8")
    assert load_scenario(str(path), site).faults[0].numbers() == {"rate_per_day": -4.0}


def test_a_fault_made_in_code_is_held_to_the_same_units() -> None:
    from simulators.faults import Fault

    with pytest.raises(ValueError, match="drop: 0.04 looks like a fraction, but this parameter is in %"):
        Fault(FaultKind.VOLTAGE_UNBALANCE, "jiefangbei-tower/meter-main", 0.0, params={"drop": 0.04})
    with pytest.raises(ValueError, match="fraction was renamed: write pressure"):
        Fault(FaultKind.DSP_NOT_MET, "jiefangbei-tower/ahu-2", 0.0, params={"fraction": 0.5})
    assert Fault(FaultKind.CO2_HIGH, "jiefangbei-tower/vav-05n", 0.0, params={"ventilation": 15}).param(
        "ventilation") == 15.0


def test_live_injection_refuses_a_bad_parameter(site: Site) -> None:
    sim = SiteSimulation(site, seed=0, speed=60, start=epoch(2026, 3, 10, 10.0), clock=lambda: 0.0)
    with pytest.raises(SiteError, match=r"params.drop: voltage_unbalance parameter drop: 4000 % is out of range"):
        sim.inject("voltage_unbalance", "jiefangbei-tower/meter-main", params={"drop": 4000})
    assert sim.active_faults() == []


def test_the_detection_bench_draws_magnitudes_inside_the_declared_ranges() -> None:
    """bench/detection.py makes Faults in code: its magnitudes are in each parameter's unit and range."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("detection_bench", ROOT / "bench" / "detection.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
    finally:
        del sys.modules[spec.name]
    for kind, ranges in bench.MAGNITUDES.items():
        for name, lo, hi in ranges:
            if name.endswith("_frac"):  # a share of the point's range, turned into point units by the bench
                continue
            p = KINDS[kind].params[name]
            assert p.lo <= lo <= hi <= p.hi, (kind, name, lo, hi, p.range_text())


def test_fault_kinds_command_lists_units_and_ranges() -> None:
    import json

    from typer.testing import CliRunner

    from retrofit.cli import app

    res = CliRunner().invoke(app, ["simulate", "fault", "kinds", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["kind"]: r for r in json.loads(res.output)}
    assert set(rows) == {k.value for k in FaultKind}
    assert rows["voltage_unbalance"]["params"]["drop"] == {"unit": "%", "range": "0.5 to 30 %", "default": 6.0,
                                                           "note": "NEMA unbalance is about drop / 3"}
    assert rows["sensor_stuck"]["params"]["value"]["default"] is None
