"""Fixtures for the rules tests: a small one-building site written to a temp dir, and reading helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from buildings.site import Site, load_site
from rules.model import CompiledRule, load_rules
from telemetry.reading import Quality, Reading

SITE_YAML = """
building:
  id: b1
  name: {zh: 测试楼, en: Test building}
  address: 1 Test Road
  year_built: 1995
  gross_floor_area_m2: 10000
  use: office
  owners:
    - {owner: o1, name: Owner One, area_m2: 9000}
  schedule:
    weekdays: ["08:00", "18:00"]
    holidays: [2026-10-01]
  overrides:
    s-co2-high: {limit_ppm: 900}
devices:
  - {id: ahu-ctl, protocol: bacnet, port: 47900, device_instance: 1, poll_interval_s: 60}
  - {id: meter, protocol: modbus, port: 15900, unit_id: 1, poll_interval_s: 60}
  - {id: iaq, protocol: modbus, port: 15901, unit_id: 1, poll_interval_s: 60}
equipment:
  - id: ahu-1
    name: AHU 1
    kind: ahu
    points:
      - {id: sat, name: SAT, brick: Supply_Air_Temperature_Sensor, unit: degC, range: [0, 50],
         bacnet: {device: ahu-ctl, object_type: analog-input, instance: 1}}
      - {id: mat, name: MAT, brick: Mixed_Air_Temperature_Sensor, unit: degC, range: [-10, 45],
         bacnet: {device: ahu-ctl, object_type: analog-input, instance: 2}}
      - {id: rat, name: RAT, brick: Return_Air_Temperature_Sensor, unit: degC, range: [5, 40],
         bacnet: {device: ahu-ctl, object_type: analog-input, instance: 3}}
      - {id: oat, name: OAT, brick: Outside_Air_Temperature_Sensor, unit: degC, range: [-10, 45],
         bacnet: {device: ahu-ctl, object_type: analog-input, instance: 4}}
      - {id: hc, name: HC, brick: Heating_Valve_Command, unit: "%", range: [0, 100],
         bacnet: {device: ahu-ctl, object_type: analog-output, instance: 1}}
      - {id: cc, name: CC, brick: Cooling_Valve_Command, unit: "%", range: [0, 100],
         bacnet: {device: ahu-ctl, object_type: analog-output, instance: 2}}
      - {id: oad, name: OAD, brick: Outside_Air_Damper_Command, unit: "%", range: [0, 100],
         bacnet: {device: ahu-ctl, object_type: analog-output, instance: 3}}
      - {id: sf, name: SF, brick: Supply_Fan_Status, unit: bool,
         bacnet: {device: ahu-ctl, object_type: binary-input, instance: 1}}
  - id: main-meter
    name: Main meter
    kind: meter
    breaker_rating_a: 1000
    overrides:
      s-overcurrent-100: {}
    points:
      - {id: ua, name: Ua, brick: Phase_Voltage_Sensor, unit: V, modbus: {device: meter, address: 0}}
      - {id: ub, name: Ub, brick: Phase_Voltage_Sensor, unit: V, modbus: {device: meter, address: 2}}
      - {id: uc, name: Uc, brick: Phase_Voltage_Sensor, unit: V, modbus: {device: meter, address: 4}}
      - {id: ia, name: Ia, brick: Phase_Current_Sensor, unit: A, modbus: {device: meter, address: 6}}
      - {id: ib, name: Ib, brick: Phase_Current_Sensor, unit: A, modbus: {device: meter, address: 8}}
      - {id: ic, name: Ic, brick: Phase_Current_Sensor, unit: A, modbus: {device: meter, address: 10}}
  - id: office-1
    name: Office 1
    kind: zone
    points:
      - {id: co2-1, name: CO2, brick: CO2_Sensor, unit: ppm, range: [0, 5000], modbus: {device: iaq, address: 0}}
      - {id: leak-1, name: Leak, brick: Leak_Sensor, unit: bool, modbus: {device: iaq, address: 2}}
  - id: office-2
    name: Office 2
    kind: zone
    overrides:
      s-co2-high: {limit_ppm: 1200}
    points:
      - {id: co2-2, name: CO2, brick: CO2_Sensor, unit: ppm, range: [0, 5000], modbus: {device: iaq, address: 4}}
"""

# 2026-03-02 is a Monday; 00:00 Asia/Shanghai = 2026-03-01T16:00Z
MONDAY = 1772380800.0


@pytest.fixture()
def site_path(tmp_path: Path) -> Path:
    d = tmp_path / "site"
    d.mkdir()
    (d / "b1.yaml").write_text(SITE_YAML, encoding="utf-8")
    return d


@pytest.fixture()
def site(site_path: Path) -> Site:
    return load_site(str(site_path))


@pytest.fixture(scope="session")
def library() -> list[CompiledRule]:
    return load_rules()


def only(library: list[CompiledRule], *ids: str) -> list[CompiledRule]:
    out = [r for r in library if r.id in ids]
    assert len(out) == len(ids)
    return out


Series = Callable[[float], float | None]


def readings(points: dict[str, Series], start: float, end: float, step: float = 60.0,
             quality: Callable[[str, float], Quality] | None = None) -> list[Reading]:
    """Readings every `step` s in [start, end) for each point key; a None value is skipped (no reading)."""
    out = []
    t = start
    while t < end:
        for k, f in points.items():
            v = f(t)
            if v is None:
                continue
            q = quality(k, t) if quality else Quality.GOOD
            out.append(Reading(k, t, None if q is not Quality.GOOD and q is not Quality.OUT_OF_RANGE else v, q))
        t += step
    return out
