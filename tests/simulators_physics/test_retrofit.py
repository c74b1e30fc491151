"""The retrofit in the physics: measures change behaviour from the retrofit date; true savings are known."""

from __future__ import annotations

import numpy as np

from buildings.site import Site
from simulators.points import SitePhysics
from simulators.savings import true_savings
from tests.simulators_physics.conftest import epoch, local_day


def test_true_savings_are_present_and_known(site: Site) -> None:
    start, end = epoch(2025, 11, 1), epoch(2026, 11, 1)
    jt = true_savings(site, "jiefangbei-tower", start, end)
    assert 0.10 < jt.fraction < 0.45 and jt.avoided_kwh > 0
    assert jt.by_category["lighting_sockets"] > 0 and jt.by_category["hvac"] > 0
    assert abs(sum(jt.by_category.values()) * 1.01 - jt.avoided_kwh) < 1e-6 * jt.baseline_kwh + 1
    dp = true_savings(site, "daping-makerworks", start, end)
    assert dp.fraction > 0.05 and dp.by_category["hvac"] > 0
    none = true_savings(site, "huaxin-building", start, end)  # no retrofit declared
    assert none.avoided_kwh == 0.0
    before = true_savings(site, "jiefangbei-tower", epoch(2025, 3, 1), epoch(2025, 6, 1))  # before 2025-07-01
    assert before.avoided_kwh == 0.0


def test_measures_change_behaviour_from_the_retrofit_date(site: Site) -> None:
    with_r = SitePhysics(site, seed=0)
    without = SitePhysics(site, seed=0, retrofit=False, sizing=with_r.sizing)
    b = "jiefangbei-tower"
    day = local_day(2026, 7, 14)  # after the 2025-07-01 retrofit
    t = with_r.models[b].grid(day, 3)
    a = with_r.models[b].run(day, 3)
    o = without.models[b].run(day, 3)
    lights = [e.id for e in with_r.models[b].kinds["lighting"]]
    la, lo = sum(a[f"{e}.kw"] for e in lights).sum(), sum(o[f"{e}.kw"] for e in lights).sum()
    assert 0.40 <= 1 - la / lo <= 0.55  # LED: 40-55 % less lighting power
    on = a["ahu-2.on"] > 0.5
    assert a["ahu-2.kw"][on].mean() < 0.8 * o["ahu-2.kw"][on].mean()  # VFD fans
    assert np.ptp(a["ahu-2.speed"][on]) > 5 and np.ptp(o["ahu-2.speed"][on]) == 0
    run = a["chiller-1.on"] > 0.5
    assert a["chiller-1.cop"][run].mean() > 1.2 * o["chiller-1.cop"][o["chiller-1.on"] > 0.5].mean()
    assert o["ahu-2.on"].sum() > a["ahu-2.on"].sum()  # schedule fix: no 2.5 h early start
    v, _ = with_r.evaluate(b, t, [f"{b}/em-main-kwh"])
    w, _ = without.evaluate(b, t, [f"{b}/em-main-kwh"])
    assert v[f"{b}/em-main-kwh"][-1] - v[f"{b}/em-main-kwh"][0] < w[f"{b}/em-main-kwh"][-1] - w[f"{b}/em-main-kwh"][0]
