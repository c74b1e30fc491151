"""The physics of the sample district: determinism, plausible values for every point, occupancy, counters."""

from __future__ import annotations

import numpy as np
import pytest

from buildings.site import Site
from simulators.points import SitePhysics
from simulators.site_sim import SiteSimulation
from simulators.weather import Weather
from tests.simulators_physics.conftest import epoch, local_day

SUMMER, WINTER = local_day(2026, 7, 20), local_day(2026, 1, 12)
TOTALS = ("Electric_Energy_Sensor", "Water_Usage_Sensor", "Gas_Usage_Sensor")


def all_values(ph: SitePhysics, day0: int, n: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for bid, m in ph.models.items():
        values, _ = ph.evaluate(bid, m.grid(day0, n))
        out.update(values)
    return out


def test_chongqing_weather_is_plausible() -> None:
    w = Weather(5)
    t = epoch(2026, 1, 1) + np.arange(0, 365 * 86400, 900)
    s = w.at(t)
    by_month = s.oat[: 360 * 96].reshape(12, -1)
    assert 5 <= by_month[0].mean() <= 11  # January
    assert 26 <= by_month[6].mean() <= 32  # July
    assert 35 <= s.oat.max() <= 42  # summer heat waves
    assert s.oat.min() >= -2
    assert 60 <= s.rh.mean() <= 85 and s.rh.min() >= 30 and s.rh.max() <= 100
    day = s.oat[200 * 96:201 * 96]
    assert day[int(15 * 4)] > day[int(5 * 4)]  # afternoon warmer than dawn


def test_deterministic_for_a_seed(site: Site, physics: SitePhysics) -> None:
    other = SitePhysics(site, seed=0)
    a, b = all_values(physics, SUMMER, 2), all_values(other, SUMMER, 2)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = all_values(SitePhysics(site, seed=1), SUMMER, 2)
    assert not np.array_equal(a["jiefangbei-tower/wx-oat"], c["jiefangbei-tower/wx-oat"])


def test_chunking_does_not_change_values(physics: SitePhysics) -> None:
    m = physics.models["jiefangbei-tower"]
    t = m.grid(SUMMER, 6)
    whole, _ = physics.evaluate("jiefangbei-tower", t)
    first, _ = physics.evaluate("jiefangbei-tower", t[: 3 * 96])
    second, _ = physics.evaluate("jiefangbei-tower", t[3 * 96:])
    for k in whole:
        joined = np.concatenate([first[k], second[k]])
        assert np.allclose(whole[k], joined, rtol=1e-9, atol=1e-6), k


@pytest.mark.parametrize("day0", [SUMMER, WINTER])
def test_every_point_has_a_plausible_value_in_range(site: Site, physics: SitePhysics, day0: int) -> None:
    values = all_values(physics, day0, 7)
    assert set(values) == set(site.points)
    assert physics.fallbacks == []
    for key, v in values.items():
        p = site.points[key].point
        assert v.dtype != object or all(isinstance(x, str) for x in v), key
        if v.dtype == object:
            continue
        assert not np.isnan(v).any(), key
        if p.range and p.brick not in TOTALS:
            assert v.min() >= p.range[0] and v.max() <= p.range[1], (key, v.min(), v.max(), p.range)
        if p.unit == "bool":
            assert set(np.unique(v)) <= {0.0, 1.0}, key
    # a few physical sanity checks
    jt = "jiefangbei-tower/"
    assert 14 <= values[jt + "vav-05n-zat"].mean() <= 30
    on = values[jt + "ahu2-sf-sts"] > 0.5
    assert abs(values[jt + "vav-05n-zat"][on].mean() - values[jt + "vav-05n-zat-sp"][on].mean()) < 1.5
    assert 380 <= values[jt + "vav-05n-co2"].min() and values[jt + "vav-05n-co2"].max() < 1000
    assert 215 <= values[jt + "em-main-ua"].mean() <= 240
    assert 0.8 <= values[jt + "em-main-pf"].mean() <= 0.99
    assert 20 <= values[jt + "swr-temp"].mean() <= 33


def test_summer_cools_and_winter_heats(physics: SitePhysics) -> None:
    s, w = all_values(physics, SUMMER, 7), all_values(physics, WINTER, 7)
    jt = "jiefangbei-tower/"
    assert s[jt + "ahu2-chw-vlv"].max() > 30 and s[jt + "ahu2-hw-vlv"].max() == 0
    assert s[jt + "ch1-kw"].max() > 20 and s[jt + "ch1-sts"].max() == 1
    assert w[jt + "ch1-kw"].max() < s[jt + "ch1-kw"].max()
    assert s[jt + "wx-oat"].mean() > w[jt + "wx-oat"].mean() + 12
    on = s[jt + "ahu2-sf-sts"] > 0.5
    assert np.abs(s[jt + "ahu2-sat"][on] - s[jt + "ahu2-sat-sp"][on]).mean() < 1.0  # SAT controlled to setpoint


def test_occupancy_drives_loads_and_co2(physics: SitePhysics) -> None:
    b = "jiefangbei-tower"
    m = physics.models[b]
    day = local_day(2026, 3, 4)  # a Wednesday
    values, _ = physics.evaluate(b, m.grid(day, 7))  # Wed..Tue: includes a Saturday morning and a Sunday
    hours = np.tile(np.arange(96) / 4, 7)
    dow = np.repeat([2, 3, 4, 5, 6, 0, 1], 96)
    work = (dow < 5) & (hours >= 9) & (hours < 17)
    night = (hours >= 1) & (hours < 5)
    sunday = dow == 6
    p = values[f"{b}/em-main-p"]
    assert p[work].mean() > 1.6 * p[night].mean()
    assert p[work].mean() > 1.4 * p[sunday].mean()
    co2 = values[f"{b}/vav-05n-co2"]
    assert co2[work].mean() > co2[night].mean() + 150
    assert values[f"{b}/lt-f05-09"][work].mean() == 1.0 and values[f"{b}/lt-f05-09"][night].max() == 0.0
    assert values[f"{b}/ahu2-sf-sts"][night].max() == 0.0 and values[f"{b}/ahu2-sf-sts"][work].min() == 1.0
    assert values[f"{b}/lift-p1-run"][work].mean() > values[f"{b}/lift-p1-run"][night].mean()


def test_counters_increase_and_equal_the_integral_of_power(physics: SitePhysics, site: Site) -> None:
    day = local_day(2026, 5, 10)
    for b in ("jiefangbei-tower", "chaotianmen-harbour", "daping-makerworks", "huaxin-building"):
        values, _ = physics.evaluate(b, physics.models[b].grid(day, 14))
        for ref in (r for r in site.points.values() if r.building.id == b and r.point.counter):
            e = values[ref.key]
            assert np.all(np.diff(e) >= 0), ref.key
            rate_brick = {"Electric_Energy_Sensor": ("Electric_Power_Sensor",),
                          "Water_Usage_Sensor": ("Water_Flow_Sensor",)}.get(ref.point.brick)
            rates = [p for p in ref.equipment.points if rate_brick and p.brick in rate_brick]
            if not rates:
                continue
            power = values[f"{b}/{rates[0].id}"]
            integral = float(np.sum((power[1:] + power[:-1]) / 2) * 0.25)  # trapezoid over 15-minute readings
            delta = float(e[-1] - e[0])
            assert abs(delta - integral) <= 0.01 * delta, (ref.key, delta, integral)


def test_main_meter_is_the_sum_of_the_sub_items(physics: SitePhysics) -> None:
    b = "jiefangbei-tower/"
    v = all_values(physics, SUMMER, 3)
    subs = sum(v[b + f"em-{c}-p"] for c in ("lighting", "hvac", "power", "special"))
    main = v[b + "em-main-p"]
    assert np.allclose(main, subs * 1.01, rtol=0.05)
    assert abs(main.sum() - 1.01 * subs.sum()) < 0.005 * main.sum()


def test_counters_between_grid_points_and_live_continue_history(site: Site, physics: SitePhysics) -> None:
    key = "jiefangbei-tower/em-main-kwh"
    t0 = epoch(2026, 4, 2, 10.0)
    ts = t0 + np.arange(0, 3600 * 3, 37.0)  # off-grid times
    v, _ = physics.evaluate("jiefangbei-tower", ts, [key])
    assert np.all(np.diff(v[key]) >= 0)
    sim = SiteSimulation(site, seed=0, start=t0, clock=lambda: 0.0)
    hist, _ = physics.evaluate("jiefangbei-tower", np.array([t0]))
    snap = sim.snapshot(t0)
    for k in (key, "jiefangbei-tower/ahu1-sat", "jiefangbei-tower/vav-05n-co2", "jiefangbei-tower/lt-lobby"):
        assert snap[k] == pytest.approx(float(hist[k][0]), rel=1e-9), k
