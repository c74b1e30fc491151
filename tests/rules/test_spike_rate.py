"""sv-spike and the sv-rate-* rules on constructed readings: a spike is out-and-back, a step that stays is not;
a change at a start or stop of the equipment (its run status, an optional context point) is an operation; a
room quantity moving faster than physics allows is flagged whatever its shape."""

from __future__ import annotations

from buildings.site import Site
from rules.binding import absent_point_key, bind
from rules.engine import Engine
from rules.model import CompiledRule
from tests.rules.conftest import MONDAY, only, readings

H = 3600.0
RULES = ("sv-spike", "sv-rate-co2")


def _raised(site: Site, library: list[CompiledRule], series: dict,
            start: float = MONDAY + 9 * H) -> list[tuple[str, str, float]]:
    eng = Engine(site, only(library, *RULES), step_s=60.0)
    ev = eng.feed(readings(series, start, start + 2 * H)) + eng.flush()
    return [(e.rule, e.subject, e.ts) for e in ev if e.kind == "raise"]


def test_the_run_status_binds_from_the_equipment_and_reads_unknown_where_absent(
        site: Site, library: list[CompiledRule]) -> None:
    b = {x.subject: x.points for x in bind(site, only(library, "sv-spike")).bindings}
    assert b["sat"] == {"x": "b1/sat", "run": "b1/sf"}
    assert b["co2-1"] == {"x": "b1/co2-1", "run": absent_point_key("b1")}


def test_out_and_back_is_a_spike_a_step_is_not(site: Site, library: list[CompiledRule]) -> None:
    t_spike = MONDAY + 10 * H
    sat = {"b1/sat": lambda t: 30.0 if t == t_spike else 13.0, "b1/sf": lambda t: 1.0}
    assert _raised(site, library, sat) == [("sv-spike", "sat", t_spike + 60)]  # seen when it came back
    step = {"b1/sat": lambda t: 30.0 if t >= t_spike else 13.0, "b1/sf": lambda t: 1.0}
    assert _raised(site, library, step) == []


def test_two_spiked_samples_in_a_row_are_one_spike_seen_when_it_comes_back(
        site: Site, library: list[CompiledRule]) -> None:
    t0 = MONDAY + 10 * H
    two = {"b1/sat": lambda t: 31.0 if t0 <= t < t0 + 120 else 13.0, "b1/sf": lambda t: 1.0}
    assert _raised(site, library, two) == [("sv-spike", "sat", t0 + 120)]
    three = {"b1/sat": lambda t: 31.0 if t0 <= t < t0 + 180 else 13.0, "b1/sf": lambda t: 1.0}
    assert _raised(site, library, three) == []  # three samples held is a step and back, not a spike
    small = {"b1/sat": lambda t: 16.0 if t0 <= t < t0 + 120 else 13.0, "b1/sf": lambda t: 1.0}
    assert _raised(site, library, small) == []  # under 25 % of the range


def test_a_jump_at_a_start_or_stop_is_an_operation(site: Site, library: list[CompiledRule]) -> None:
    t_on = MONDAY + 10 * H
    start = {"b1/sat": lambda t: 13.0 if t >= t_on else 30.0, "b1/sf": lambda t: 1.0 if t >= t_on else 0.0}
    assert _raised(site, library, start) == []
    # the fan runs for one sample only: out and back, but explained by the fan
    blip = {"b1/sat": lambda t: 13.0 if t == t_on else 30.0, "b1/sf": lambda t: 1.0 if t == t_on else 0.0}
    assert _raised(site, library, blip) == []


def test_room_co2_faster_than_physics_is_flagged_spike_or_step(site: Site, library: list[CompiledRule]) -> None:
    t_f = MONDAY + 10 * H
    spike = {"b1/co2-1": lambda t: 2000.0 if t == t_f else 600.0}
    assert sorted(_raised(site, library, spike)) == [("sv-rate-co2", "co2-1", t_f),
                                                     ("sv-spike", "co2-1", t_f + 60)]
    step = {"b1/co2-1": lambda t: 1300.0 if t >= t_f else 600.0}
    assert _raised(site, library, step) == [("sv-rate-co2", "co2-1", t_f)]
    ramp = {"b1/co2-1": lambda t: 600.0 + max(0.0, t - t_f) / 60.0 * 20.0}  # 300 ppm per 15 min: a crowded room
    assert _raised(site, library, ramp) == []
