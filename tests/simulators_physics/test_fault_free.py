"""A fault-free month is really fault-free: AHUs within G36 tolerances, no safety limit crossed."""

from __future__ import annotations

import numpy as np
import pytest

from buildings.site import Site
from simulators.points import SitePhysics
from tests.simulators_physics.conftest import local_day

EPS_SAT, EPS_MAT, EPS_RAT, EPS_OAT, DT_SF = 1.1, 2.8, 1.1, 1.1, 1.1  # G36 Table 5.16.14.5 (K)


def _by_brick(eq, values: dict, b: str) -> dict[str, np.ndarray]:
    return {p.brick: values[f"{b}/{p.id}"] for p in eq.points}


@pytest.mark.parametrize("month", [(2026, 1), (2026, 7)])
def test_a_fault_free_month_stays_quiet(site: Site, physics: SitePhysics, month: tuple[int, int]) -> None:
    day0 = local_day(*month, 1)
    problems: list[str] = []
    for bf in site.files:
        b = bf.building.id
        m = physics.models[b]
        values, quality = physics.evaluate(b, m.grid(day0, 30))
        assert not quality
        occupied = m.run(day0, 30)["occupied"] > 0.5
        # an hour into occupied hours: the morning warm-up / pull-down (at most 2 K per 15 min) is over
        settled = occupied & np.concatenate((np.zeros(4, dtype=bool), occupied[:-4]))
        for eq in bf.equipment:
            v = _by_brick(eq, values, b)
            if eq.kind in ("ahu", "rtu"):
                on = v["Supply_Fan_Status"] > 0.5
                mat, rat, oat = v["Mixed_Air_Temperature_Sensor"], v["Return_Air_Temperature_Sensor"], \
                    v["Outside_Air_Temperature_Sensor"]
                sat, sp = v["Supply_Air_Temperature_Sensor"], v["Supply_Air_Temperature_Setpoint"]
                cc, hc = v["Cooling_Valve_Command"], v["Heating_Valve_Command"]
                dsp, dsp_sp = v["Supply_Air_Static_Pressure_Sensor"], v["Supply_Air_Static_Pressure_Setpoint"]
                checks = {
                    "FC1": (dsp < dsp_sp - 25) & (v["Supply_Fan_Speed_Command"] >= 94),
                    "FC2": mat + EPS_MAT < np.minimum(rat - EPS_RAT, oat - EPS_OAT),
                    "FC3": mat - EPS_MAT > np.maximum(rat + EPS_RAT, oat + EPS_OAT),
                    "FC7": (sat < sp - EPS_SAT) & (hc >= 99),
                    "FC13": (sat > sp + EPS_SAT) & (cc >= 99),
                    "simultaneous": (cc > 2) & (hc > 2),
                    "SAT off setpoint": np.abs(sat - sp) > 1.5,
                    "fan unoccupied > 30 min": np.zeros_like(on),
                }
                run = np.convolve((on & ~occupied).astype(int), np.ones(3, dtype=int), "same") >= 3
                checks["fan unoccupied > 30 min"] = run
                for name, bad in checks.items():
                    if (bad & on).any():
                        problems.append(f"{b}/{eq.id} {name}: {(bad & on).sum()} samples")
            for p in eq.points:
                a = values[f"{b}/{p.id}"]
                limit = {"CO2_Sensor": 1000.0, "CO_Sensor": 25.0, "Combustible_Gas_Sensor": 10.0}.get(p.brick)
                if limit and a.max() > limit:
                    problems.append(f"{b}/{p.id} above {limit}")
                if p.brick in ("Leak_Sensor", "Smoke_Detection_Sensor") and a.max() > 0:
                    problems.append(f"{b}/{p.id} tripped")
                if p.brick == "Air_Temperature_Sensor" and eq.kind == "switch_room" and a.max() > 35:
                    problems.append(f"{b}/{p.id} switch room above 35 C")
                if p.brick == "Phase_Current_Sensor" and eq.breaker_rating_a and a.max() > 0.8 * eq.breaker_rating_a:
                    problems.append(f"{b}/{p.id} above 80 % of the breaker")
            volts = [values[f"{b}/{p.id}"] for p in eq.points if p.brick == "Phase_Voltage_Sensor"]
            if len(volts) == 3:
                vv = np.array(volts)
                if (np.abs(vv - vv.mean(0)).max(0) / vv.mean(0)).max() > 0.01:
                    problems.append(f"{b}/{eq.id} voltage unbalance above 1 %")
            zat = [p for p in eq.points if p.brick == "Zone_Air_Temperature_Sensor"]
            zsp = [p for p in eq.points if p.brick == "Zone_Air_Temperature_Setpoint"]
            if zat and zsp:
                t, s = values[f"{b}/{zat[0].id}"], values[f"{b}/{zsp[0].id}"]
                if (settled & (np.abs(t - s) > 2.0)).any():
                    problems.append(f"{b}/{zat[0].id} more than 2 K from setpoint an hour into occupied hours")
    assert problems == []
