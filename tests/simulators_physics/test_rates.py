"""The simulator does not invent sensor faults: over a full simulated year, room temperature, humidity and CO2
(and chilled water outside a chiller or pump start/stop) change no faster per 15-minute sample than the rate
limits the rule library declares (sv-rate-* rules), and no room jumps out and back like a spike.

The physics is evaluated directly on its own 15-minute grid (no sockets, no rules engine): about 4 s for the
district's year.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from buildings.site import Site
from rules.binding import bind
from rules.model import load_rules
from simulators.points import SitePhysics
from tests.simulators_physics.conftest import local_day

LIMIT_PARAM = {"sv-rate-room-temp": "max_k_per_15min", "sv-rate-room-rh": "max_pct_per_15min",
               "sv-rate-co2": "max_ppm_per_15min", "sv-rate-chw": "max_k_per_15min"}


@pytest.fixture(scope="module")
def year(site: Site, physics: SitePhysics) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every point of the district over 2026 (values as the sensors report them, noise included), with times."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for bf in site.files:
        b = bf.building.id
        t = physics.models[b].grid(local_day(2026, 1, 1), 365)
        values, _ = physics.evaluate(b, t)
        out.update({k: (t, v) for k, v in values.items() if v.dtype != object})
    return out


def _switching(run: np.ndarray | None, n: int, window: int = 2) -> np.ndarray:
    """Samples within ``window`` samples after a change of the run status (the rules' 30-minute window)."""
    if run is None:
        return np.zeros(n - 1, dtype=bool)
    ch = np.concatenate(([False], np.diff(run) != 0))
    near = np.convolve(ch.astype(int), np.ones(window + 1, dtype=int))[:n] > 0
    return near[1:]


def test_rates_stay_within_the_rule_library_limits_over_a_year(site: Site, year: dict) -> None:
    rules = {r.id: r for r in load_rules() if r.id in LIMIT_PARAM}
    assert set(rules) == set(LIMIT_PARAM)
    worst: dict[str, tuple[float, str]] = {}
    problems = []
    for b in bind(site, list(rules.values())).bindings:
        limit = b.params[LIMIT_PARAM[b.rule.id]]
        t, v = year[b.points["x"]]
        run = year.get(b.points.get("run", ""), (None, None))[1]
        step = np.abs(np.diff(v))
        step[_switching(run, v.size)] = 0.0
        i = int(np.argmax(step))
        if step[i] > worst.get(b.rule.id, (0.0, ""))[0]:
            worst[b.rule.id] = (float(step[i]), b.points["x"])
        if step[i] > limit:
            when = dt.datetime.fromtimestamp(float(t[i + 1]), dt.timezone(dt.timedelta(hours=8)))
            problems.append(f"{b.points['x']} {v[i]:.1f} -> {v[i + 1]:.1f} at {when} (limit {limit})")
    print("worst step per rule", worst)
    assert problems == []
    # room RH and temperature keep a margin below their limits: the physics is not grazing the rules
    assert worst["sv-rate-room-rh"][0] < 0.75 * rules["sv-rate-room-rh"].rule.params["max_pct_per_15min"]
    assert worst["sv-rate-room-temp"][0] < 0.9 * rules["sv-rate-room-temp"].rule.params["max_k_per_15min"]


def test_no_room_sensor_spikes_out_and_back_over_a_year(site: Site, year: dict) -> None:
    rule = next(r for r in load_rules() if r.id == "sv-spike")
    frac = rule.rule.params["jump_fraction"]
    problems = []
    for b in bind(site, [rule]).bindings:
        _t, v = year[b.points["x"]]
        run = year.get(b.points.get("run", ""), (None, None))[1]
        lo, hi = b.attrs["range_min"], b.attrs["range_max"]
        out, back = v[1:-1] - v[:-2], v[1:-1] - v[2:]
        spike = (out * back > 0) & (np.minimum(np.abs(out), np.abs(back)) > frac * (hi - lo))
        spike &= ~_switching(run, v.size)[1:]
        if spike.any():
            problems.append(f"{b.points['x']}: {int(spike.sum())} out-and-back jumps")
    assert problems == []
