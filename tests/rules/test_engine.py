"""The engine on constructed readings: persistence, hysteresis, unknowns, schedules, overrides, replay = live."""

from __future__ import annotations

import random

from buildings.site import load_site
from rules.binding import bind
from rules.engine import Engine
from telemetry.reading import Quality, Reading
from tests.rules.conftest import MONDAY, SITE_YAML, only, readings

H = 3600.0
AHU = ["b1/sat", "b1/mat", "b1/rat", "b1/oat", "b1/hc", "b1/cc", "b1/oad", "b1/sf"]


def ahu(hc: float = 0.0, cc: float = 30.0, sf: float = 1.0) -> dict[str, float]:
    return {"b1/sat": 13.0, "b1/mat": 22.0, "b1/rat": 24.0, "b1/oat": 18.0, "b1/hc": hc, "b1/cc": cc,
            "b1/oad": 20.0, "b1/sf": sf}


def feed_all(eng: Engine, rs: list[Reading]) -> list:
    return eng.feed(rs) + eng.flush()


def test_persistence_then_hysteresis(site, library) -> None:
    eng = Engine(site, only(library, "e-simultaneous-heat-cool"))
    t0, f0, f1 = MONDAY + 10 * H, MONDAY + 11 * H, MONDAY + 12 * H
    vals = {k: (lambda t, k=k: ahu(hc=40 if f0 <= t < f1 else 0)[k]) for k in AHU}
    ev = feed_all(eng, readings(vals, t0, MONDAY + 13 * H))
    assert [(e.kind, e.ts) for e in ev] == [("raise", f0 + 15 * 60), ("clear", f1 + 10 * 60)]
    e = ev[0]
    assert e.values["hc"] == 40 and e.values["cc"] == 30 and e.subject == "ahu-1" and e.family == "energy"
    assert "40" in e.message_en and "同时开启" in e.message_zh


def test_unknown_inputs_neither_raise_nor_clear(site, library) -> None:
    eng = Engine(site, only(library, "e-simultaneous-heat-cool"))
    t0, f0 = MONDAY + 10 * H, MONDAY + 11 * H
    vals = {k: (lambda t, k=k: ahu(hc=40 if t >= f0 else 0)[k]) for k in AHU}

    def q(key: str, t: float) -> Quality:  # the heating valve reads BAD for the first 30 min of the fault
        return Quality.BAD if key == "b1/hc" and f0 <= t < f0 + 30 * 60 else Quality.GOOD
    ev = feed_all(eng, readings(vals, t0, f0 + 2 * H, quality=q))
    assert [(e.kind, e.ts) for e in ev] == [("raise", f0 + 45 * 60)]  # 30 min unknown + 15 min hold
    # now the alarm is open: the cooling valve goes silent (stale), then comm-failure: never a false clear
    # (heating still 40 %, so the condition is unknown, not false; with hc = 0 it would be false and clear)
    rs = readings({k: (lambda t, k=k: ahu(hc=40)[k]) for k in AHU if k != "b1/cc"}, f0 + 2 * H, f0 + 4 * H)
    rs += [Reading("b1/cc", t, None, Quality.COMM_FAILURE) for t in range(int(f0 + 3 * H), int(f0 + 4 * H), 60)]
    assert eng.feed(rs) + eng.flush() == []
    assert eng.active() == [("e-simultaneous-heat-cool", "b1", "ahu-1")]


def test_schedule_and_holidays(site, library) -> None:
    eng = Engine(site, only(library, "e-fan-unoccupied"))
    vals = {k: (lambda t, k=k: ahu()[k]) for k in AHU}  # the fan never stops
    ev = feed_all(eng, readings(vals, MONDAY + 6 * H, MONDAY + 20 * H))
    # 06:00-07:59 unoccupied: raised at 06:30, cleared 10 min into occupied hours, raised again 18:30
    assert [(e.kind, e.ts) for e in ev] == [("raise", MONDAY + 6.5 * H), ("clear", MONDAY + 8 * H + 600),
                                            ("raise", MONDAY + 18.5 * H)]
    holiday = 1790784000.0  # 2026-10-01 00:00 Asia/Shanghai, a Thursday listed as a holiday
    eng = Engine(site, only(library, "e-fan-unoccupied"))
    ev = feed_all(eng, readings(vals, holiday + 9 * H, holiday + 12 * H))
    assert [(e.kind, e.ts) for e in ev] == [("raise", holiday + 9.5 * H)]


def test_thresholds_overridden_per_building_and_equipment(site, library) -> None:
    eng = Engine(site, only(library, "s-co2-high"))
    vals = {"b1/co2-1": lambda t: 1000.0, "b1/co2-2": lambda t: 1000.0}
    ev = feed_all(eng, readings(vals, MONDAY + 9 * H, MONDAY + 11 * H))
    # building override 900 ppm applies to office-1; office-2's own override (1200 ppm) wins there
    assert [(e.kind, e.subject) for e in ev] == [("raise", "co2-1")]
    assert ev[0].values["limit_ppm"] == 900


def test_device_comm_loss_and_recovery(site, library) -> None:
    eng = Engine(site, only(library, "sv-comm", "sv-stale"))
    keys = ["b1/ua", "b1/ub", "b1/uc", "b1/ia", "b1/ib", "b1/ic"]
    f0, f1 = MONDAY + 10 * H, MONDAY + 11 * H
    vals = {k: (lambda t: 230.0) for k in keys}

    def q(key: str, t: float) -> Quality:
        return Quality.COMM_FAILURE if f0 <= t < f1 else Quality.GOOD
    others = {k: (lambda t: 20.0) for k in ["b1/sat", "b1/co2-1"]}
    ev = feed_all(eng, readings(vals, MONDAY + 9 * H, MONDAY + 12 * H, quality=q) +
                  readings(others, MONDAY + 9 * H, MONDAY + 12 * H))
    comm = [(e.kind, e.ts) for e in ev if e.rule == "sv-comm"]
    assert comm[0][0] == "raise" and f0 + 60 < comm[0][1] <= f0 + 3 * 60 + 2 * 60 + 60
    assert comm[1][0] == "clear" and comm[1][1] == f1 + 2 * 60
    assert all(e.subject == "meter" for e in ev)
    stale = [(e.kind, e.ts) for e in ev if e.rule == "sv-stale"]
    assert stale and stale[0] == ("raise", f0 + 12 * 60)


def test_flapping_is_one_alarm_with_retriggers(site, library) -> None:
    eng = Engine(site, only(library, "s-water-leak"))
    # the leak sensor chatters: wet 2 min, dry 2 min, for an hour (clear_for is 10 min)
    vals = {"b1/leak-1": lambda t: 1.0 if (t // 120) % 2 == 0 else 0.0, "b1/co2-1": lambda t: 500.0}
    ev = feed_all(eng, readings(vals, MONDAY + 10 * H, MONDAY + 11 * H))
    kinds = [e.kind for e in ev]
    assert kinds.count("raise") == 1 and kinds.count("clear") == 0 and kinds.count("retrigger") >= 10


def test_replay_gives_the_same_alarms_as_live_out_of_order_batches(site, library) -> None:
    rules = only(library, "s-voltage-unbalance-2", "s-voltage-unbalance-3", "s-co2-high", "e-simultaneous-heat-cool",
                 "sv-spike", "s-water-leak")
    f0 = MONDAY + 10 * H
    vals = {"b1/ua": lambda t: 230.0 * (0.93 if f0 <= t < f0 + H else 1.0), "b1/ub": lambda t: 230.0,
            "b1/uc": lambda t: 231.0, "b1/co2-1": lambda t: 1300.0 if t > f0 + 2 * H else 600.0,
            "b1/leak-1": lambda t: 1.0 if f0 + 30 * 60 <= t < f0 + 40 * 60 else 0.0,
            "b1/sat": lambda t: 40.0 if int(t) % 3600 == 0 else 13.0}
    vals.update({k: (lambda t, k=k: ahu(hc=50 if t > f0 + 1.5 * H else 0)[k]) for k in AHU if k != "b1/sat"})
    rs = readings(vals, MONDAY + 8 * H, MONDAY + 16 * H)
    ordered = sorted(rs, key=lambda r: r.ts)
    replayed = [(e.kind, e.rule, e.subject, e.ts) for e in feed_all(Engine(site, rules), ordered)]
    assert {r for _, r, _, _ in replayed} >= {"s-voltage-unbalance-2", "s-voltage-unbalance-3", "s-co2-high",
                                                "e-simultaneous-heat-cool", "sv-spike", "s-water-leak"}
    live = Engine(site, rules, lateness_s=120)
    rnd = random.Random(3)
    got = []
    i = 0
    while i < len(rs):  # batches of 1-40 readings, shuffled within +-60 s of event time
        n = rnd.randint(1, 40)
        batch = rs[i:i + n]
        rnd.shuffle(batch)
        got += live.feed(batch)
        i += n
    got += live.flush()
    assert [(e.kind, e.rule, e.subject, e.ts) for e in got] == replayed
    assert live.stats.late == 0


def test_binding_reports_unbound_rules_and_bad_overrides(tmp_path, library) -> None:
    bad = SITE_YAML.replace("s-co2-high: {limit_ppm: 900}", "s-co2-high: {limit_pmm: 900}\n    no-such-rule: {x: 1}")
    (tmp_path / "b.yaml").write_text(bad, encoding="utf-8")
    rep = bind(load_site(str(tmp_path)), library)
    msgs = [p.message for p in rep.problems]
    assert any("no parameter 'limit_pmm'" in m for m in msgs) and any("unknown rule 'no-such-rule'" in m for m in msgs)
    assert "e-chiller-cop-low" in rep.unbound and "Chiller_Status" in rep.unbound["e-chiller-cop-low"]
    assert "g36-fc2" not in rep.unbound
    by = rep.by_rule()
    assert {b.subject for b in by["s-co2-high"]} == {"co2-1", "co2-2"}
    assert {b.points["va"] for b in by["s-voltage-unbalance-2"]} == {"b1/ua"}  # three phases, three points
    assert {tuple(sorted(b.points.values())) for b in by["s-voltage-unbalance-2"]} == {("b1/ua", "b1/ub", "b1/uc")}


def test_no_alarm_on_a_healthy_day(site, library) -> None:
    step = 60.0
    eng = Engine(site, library, step_s=step)
    occ = lambda t: 8 <= ((t - MONDAY) / H) % 24 < 18  # noqa: E731
    vals = {k: (lambda t, k=k: ahu(cc=30 if occ(t) else 0, sf=1 if occ(t) else 0)[k] +
                (0.05 * ((t // step) % 7) if k in ("b1/sat", "b1/mat", "b1/rat", "b1/oat") else 0))
            for k in AHU}
    vals.update({"b1/ua": lambda t: 230 + (t // step) % 3 * 0.1, "b1/ub": lambda t: 231.0, "b1/uc": lambda t: 229.5,
                 "b1/ia": lambda t: 300.0, "b1/ib": lambda t: 310.0, "b1/ic": lambda t: 305.0,
                 "b1/co2-1": lambda t: 700 + (t // step) % 5, "b1/co2-2": lambda t: 650 + (t // step) % 4,
                 "b1/leak-1": lambda t: 0.0})
    ev = feed_all(eng, readings(vals, MONDAY + 4 * H, MONDAY + 20 * H, step=step))
    assert ev == []


def test_live_lateness_raises_a_leak_within_a_tick_and_late_uplinks_still_count(site, library) -> None:
    """The collector's in-process engine (LIVE_LATENESS_S): readings arrive in real time, a leak raises at the
    first tick the watermark passes (not two minutes later), and an uplink that arrives after the watermark
    passed its timestamp (queued during a broker outage) still raises, at the next tick."""
    from retrofit.cmd_collect import LIVE_LATENESS_S, LIVE_STEP_S

    eng = Engine(site, only(library, "s-water-leak"), step_s=LIVE_STEP_S, lateness_s=LIVE_LATENESS_S)
    t0, wet = MONDAY + 10 * H, MONDAY + 10 * H + 600
    events = []
    for t in range(int(t0), int(t0 + 1200), 5):  # a meter polled every 5 s drives event time, as live
        events += eng.feed([Reading("b1/co2-1", float(t), 500.0, Quality.GOOD),
                            Reading("b1/leak-1", float(t), 1.0 if t >= wet else 0.0, Quality.GOOD)])
        if events:
            break
    assert [e.kind for e in events] == ["raise"]
    assert events[0].ts <= wet + LIVE_STEP_S and t <= wet + LIVE_STEP_S + LIVE_LATENESS_S + 5 <= wet + 30

    eng = Engine(site, only(library, "s-water-leak"), step_s=LIVE_STEP_S, lateness_s=LIVE_LATENESS_S)
    ev = eng.feed([Reading("b1/leak-1", t0, 0.0, Quality.GOOD)])
    for t in range(int(t0), int(t0 + 900), 5):
        ev += eng.feed([Reading("b1/co2-1", float(t), 500.0, Quality.GOOD)])
    assert ev == []
    late = eng.feed([Reading("b1/leak-1", t0 + 840, 1.0, Quality.GOOD)])  # behind the watermark (t0 + 880)
    late += eng.feed([Reading("b1/co2-1", t0 + 900 + 60, 500.0, Quality.GOOD)])
    assert [e.kind for e in late] == ["raise"] and eng.stats.late == 0
