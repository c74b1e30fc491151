"""Fixtures for the site-model tests: a small valid building file that each test breaks in one place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# One building with a device of each protocol and a point on each. Tests replace one line and expect the
# problem on the line that holds the replacement.
BASE = """\
building:
  id: test-tower
  name: {zh: 测试大厦, en: Test Tower}
  address: 1 Test Road, Yuzhong
  year_built: 1995
  gross_floor_area_m2: 10000
  use: office
  owners:
    - {owner: owner-a, name: Owner A Co., area_m2: 9000}
  schedule:
    weekdays: ["08:00", "18:00"]
    saturday: ["09:00", "12:00"]
    holidays: [2026-10-01]
    workdays: [2026-10-10]
devices:
  - {id: meter, protocol: modbus, host: 127.0.0.1, port: 15020, unit_id: 1}
  - {id: meter-2, protocol: modbus, host: 127.0.0.1, port: 15020, unit_id: 2}
  - {id: ahu-ctl, protocol: bacnet, host: 127.0.0.1, port: 47810, device_instance: 100}
  - {id: gw, protocol: mqtt, topic_prefix: yuzhong/test-tower}
equipment:
  - id: meter-main
    name: Main meter
    kind: meter
    breaker_rating_a: 630
    points:
      - id: p-kw
        name: Power
        brick: Electric_Power_Sensor
        unit: kW
        range: [0, 500]
        modbus: {device: meter, address: 0, type: float32}
      - id: e-kwh
        name: Energy
        brick: Electric_Energy_Sensor
        unit: kWh
        counter: true
        modbus: {device: meter, address: 2, type: uint32, scale: 0.01}
      - id: status-a
        name: Breaker A closed
        brick: Point
        unit: bool
        modbus: {device: meter, address: 10, type: bit, bit: 0}
      - id: status-b
        name: Breaker B closed
        brick: Point
        unit: bool
        modbus: {device: meter, address: 10, type: bit, bit: 1}
      - id: lights
        name: Lighting circuit
        brick: Lighting_Status
        unit: bool
        modbus: {device: meter, function: coil, address: 0, type: bit}
  - id: ahu-1
    name: AHU 1
    kind: ahu
    points:
      - id: sat
        name: Supply air temperature
        brick: Supply_Air_Temperature_Sensor
        unit: degC
        range: [0, 50]
        bacnet: {device: ahu-ctl, object_type: analog-input, instance: 1}
  - id: zone-1
    name: Zone 1
    kind: zone
    points:
      - id: zat
        name: Zone temperature
        brick: Zone_Air_Temperature_Sensor
        unit: degC
        mqtt: {device: gw, topic: yuzhong/test-tower/th-1, value_path: temperature, time_path: ts}
      - id: zat-bat
        name: Zone sensor battery
        brick: Battery_Level_Sensor
        unit: "%"
        mqtt: {device: gw, topic: yuzhong/test-tower/th-1, value_path: battery}
"""


def edit(text: str, old: str, new: str) -> tuple[str, int]:
    """Replace the one occurrence of old with new; return the text and the 1-based line where new starts."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the base file"
    out = text.replace(old, new)
    return out, text[: text.index(old)].count("\n") + 1


@pytest.fixture()
def write_site(tmp_path: Path) -> Callable[..., Path]:
    """Write building files into a fresh folder: write_site(name=text, ...) -> folder."""

    def _write(**files: str) -> Path:
        folder = tmp_path / "site"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
        return folder

    return _write
