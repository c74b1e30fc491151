"""Query helpers over both stores: energy per meter and sub-item, intensity, load profile, last values."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from buildings.site import Site, load_site
from telemetry.queries import (
    building_energy,
    energy,
    energy_by_subitem,
    energy_use_intensity,
    last_values,
    load_profile,
    meters,
)
from telemetry.reading import Quality, Reading
from telemetry.store import Store
from tests.telemetry.helpers import SH, T0

DAY, STEP = 86400.0, 900.0
SITE = """
building:
  id: qb
  name: {zh: 测试楼, en: Test Building}
  address: 1 Test Road
  year_built: 1995
  gross_floor_area_m2: 1000
  use: office
  timezone: Asia/Shanghai
  owners: [{owner: o1, name: Owner, area_m2: 1000}]
devices:
  - {id: gw, protocol: modbus, host: 127.0.0.1, port: 15020, unit_id: 1}
equipment:
  - id: main
    name: Main meter
    kind: meter
    points:
      - {id: main-p, name: P, brick: Electric_Power_Sensor, unit: kW, subitem: total,
         modbus: {device: gw, address: 0}}
      - {id: main-kwh, name: E, name_zh: 总电能, brick: Electric_Energy_Sensor, unit: kWh, subitem: total,
         counter: true, modbus: {device: gw, address: 2}}
  - id: hvac
    name: HVAC meter
    kind: meter
    points:
      - {id: hvac-kwh, name: E, brick: Electric_Energy_Sensor, unit: kWh, subitem: hvac, counter: true,
         modbus: {device: gw, address: 4}}
  - id: light
    name: Lighting meter (power only)
    kind: meter
    points:
      - {id: light-p, name: P, brick: Electric_Power_Sensor, unit: kW, subitem: lighting_sockets,
         modbus: {device: gw, address: 6}}
  - id: ahu1
    name: AHU
    kind: ahu
    points:
      - {id: sat, name: Supply air temperature, brick: Supply_Air_Temperature_Sensor, unit: degC,
         modbus: {device: gw, address: 8}}
"""


@pytest.fixture()
def site(tmp_path: Path) -> Site:
    path = tmp_path / "qb.yaml"
    path.write_text(textwrap.dedent(SITE), encoding="utf-8")
    return load_site(str(path))


def _history() -> list[Reading]:
    """Two local days: main +10 kWh per 15 min on day 1, +20 on day 2 (reset to 0 at noon of day 2);
    HVAC +5 per 15 min; lighting meter has only power: 8 kW on day 1, 4 kW on day 2."""
    out, main, hvac = [], 1000.0, 0.0
    for i in range(-1, 192):
        t = T0 + i * STEP
        if i >= 0:
            main += 10 if t < T0 + DAY else 20
            hvac += 5
        if t == T0 + 1.5 * DAY:
            main = 20.0  # meter replaced at noon: the new one has counted 20 kWh since
        out += [Reading("qb/main-kwh", t, main), Reading("qb/hvac-kwh", t, hvac),
                Reading("qb/main-p", t, 40.0 if t < T0 + DAY else 80.0)]
        if i >= 0:
            out.append(Reading("qb/light-p", t, 8.0 if t < T0 + DAY else 4.0))
    out.append(Reading("qb/sat", T0 + 2 * DAY - 60, 13.5))
    out.append(Reading("qb/light-p", T0 + DAY + 60, 999.0, Quality.OUT_OF_RANGE))
    return out


def test_meters_from_the_site(site: Site) -> None:
    found = {m.key: (m.subitem, m.energy_point, m.power_point) for m in meters(site)}
    assert found == {"qb/main": ("total", "qb/main-kwh", "qb/main-p"), "qb/hvac": ("hvac", "qb/hvac-kwh", None),
                     "qb/light": ("lighting_sockets", None, "qb/light-p")}


def test_daily_hourly_monthly_energy(store: Store, site: Site) -> None:
    store.write(_history())
    daily = energy(store, site, T0, T0 + 2 * DAY, "day")
    assert daily["qb/main"] == [(T0, pytest.approx(960.0)), (T0 + DAY, pytest.approx(1920.0))]
    assert daily["qb/hvac"] == [(T0, pytest.approx(480.0)), (T0 + DAY, pytest.approx(480.0))]
    assert daily["qb/light"] == [(T0, pytest.approx(192.0)), (T0 + DAY, pytest.approx(96.0))]
    hourly = energy(store, site, T0, T0 + 2 * DAY, "hour", building="qb")
    assert len(hourly["qb/main"]) == 48 and hourly["qb/main"][5] == (T0 + 5 * 3600, pytest.approx(40.0))
    assert hourly["qb/light"][30] == (T0 + 30 * 3600, pytest.approx(4.0))
    monthly = energy(store, site, T0, T0 + 2 * DAY, "month")
    assert sum(v for _, v in monthly["qb/main"]) == pytest.approx(2880.0)
    for t, _ in monthly["qb/main"]:
        local = dt.datetime.fromtimestamp(t, SH)
        assert (local.day, local.hour) == (1, 0)


def test_subitems_total_and_intensity(store: Store, site: Site) -> None:
    store.write(_history())
    subs = energy_by_subitem(store, site, "qb", T0, T0 + 2 * DAY, "day")
    assert set(subs) == {"total", "hvac", "lighting_sockets"}
    assert [v for _, v in subs["total"]] == [pytest.approx(960.0), pytest.approx(1920.0)]
    assert [v for _, v in subs["lighting_sockets"]] == [pytest.approx(192.0), pytest.approx(96.0)]
    assert sum(v for _, v in building_energy(store, site, "qb", T0, T0 + 2 * DAY)) == pytest.approx(2880.0)
    eui = energy_use_intensity(store, site, "qb", T0, T0 + 2 * DAY)
    assert eui.kwh == pytest.approx(2880.0) and eui.covered_days == 2
    assert eui.kwh_per_m2_year == pytest.approx(2880.0 / 1000 * 365 / 2)


def test_load_profile_by_hour_of_week(store: Store, site: Site) -> None:
    store.write(_history())
    profile = load_profile(store, site, "qb", T0, T0 + 2 * DAY)
    wd = dt.datetime.fromtimestamp(T0, SH).weekday()
    assert len(profile) == 168
    assert profile[wd * 24 + 9] == pytest.approx(40.0)
    assert profile[((wd + 1) % 7) * 24 + 9] == pytest.approx(80.0)
    assert sum(v is not None for v in profile) == 48


def test_last_values_for_a_building(store: Store, site: Site) -> None:
    store.write(_history())
    now = T0 + 2 * DAY
    rows = {r.key: r for r in last_values(store, site, "qb", now=now)}
    assert set(rows) == {"qb/main-p", "qb/main-kwh", "qb/hvac-kwh", "qb/light-p", "qb/sat"}
    assert rows["qb/sat"].reading == Reading("qb/sat", now - 60, 13.5)
    assert rows["qb/sat"].age_s == pytest.approx(60.0) and rows["qb/sat"].unit == "degC"
    assert rows["qb/main-kwh"].name_zh == "总电能"
