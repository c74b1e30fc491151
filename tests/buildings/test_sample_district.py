"""The Yuzhong sample district: big enough, varied enough, and something for every rule family to watch."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from buildings.brick import BRICK_CLASSES
from buildings.site import BuildingUse, ModbusType, OwnerKind, Protocol, Site, load_site


@pytest.fixture(scope="module")
def site(sample_site_path: Path) -> Site:
    return load_site(str(sample_site_path))


def test_size_and_protocols(site: Site) -> None:
    s = site.summary()
    assert s["buildings"] >= 4
    assert 300 <= s["points"] <= 600
    assert all(n >= 50 for n in s["points_by_protocol"].values()), s


def test_buildings_differ_like_yuzhong(site: Site) -> None:
    by_id = {b.id: b for b in site.buildings}
    kinds = {b.id: {o.kind for o in b.owners} for b in site.buildings}
    owners = {b.id: sum(o.count for o in b.owners) for b in site.buildings}
    # a single-owner 1990s tower with BACnet air side
    single = [i for i, n in owners.items() if n == 1 and 1990 <= by_id[i].year_built <= 1999]
    assert any(d.protocol == Protocol.BACNET for i in single for d in site.building(i).devices)
    # a fragmented 1990s tower: dozens of individual owners, no BACnet, wireless sensors
    frag = [i for i, n in owners.items() if n >= 24 and OwnerKind.INDIVIDUAL in kinds[i]]
    assert frag and all(1990 <= by_id[i].year_built <= 1999 for i in frag)
    protos = {d.protocol for d in site.building(frag[0]).devices}
    assert protos == {Protocol.MODBUS, Protocol.MQTT}
    # a converted warehouse with two owners, an RTU on BACnet, Modbus meters and MQTT sensors
    conv = [b for b in site.buildings if b.use == BuildingUse.CONVERTED_INDUSTRIAL]
    assert conv and len(conv[0].owners) == 2
    bf = site.building(conv[0].id)
    assert {d.protocol for d in bf.devices} == {Protocol.BACNET, Protocol.MODBUS, Protocol.MQTT}
    assert any(e.kind == "rtu" for e in bf.equipment)
    # small owners are rows with a count, never named people
    for b in site.buildings:
        for o in b.owners:
            if o.kind == OwnerKind.INDIVIDUAL:
                assert o.count > 1 and "individuals" in o.name, o
    assert sum(1 for b in site.buildings if b.retrofit_date and b.retrofit_measures) >= 2
    for b in site.buildings:
        assert b.name.zh and b.name.en and b.name.zh != b.name.en


def test_office_schedules_know_the_holidays(site: Site) -> None:
    import datetime as dt

    offices = [b for b in site.buildings if b.use in (BuildingUse.OFFICE, BuildingUse.MIXED)]
    assert offices
    for b in offices:
        s = b.schedule
        assert dt.date(2026, 10, 1) in s.holidays and dt.date(2027, 2, 8) in s.holidays  # National Day, Spring F.
        assert s.hours_for(dt.date(2026, 2, 17)) is None  # Spring Festival, a Tuesday
        assert s.hours_for(dt.date(2026, 2, 28)) == s.hours_for(dt.date(2026, 3, 2))  # make-up Saturday


def _classes(site: Site, kinds: set[str]) -> list[set[str]]:
    return [{p.brick for p in e.points} for f in site.files for e in f.equipment if e.kind in kinds]


G36 = {"Supply_Air_Temperature_Sensor", "Mixed_Air_Temperature_Sensor", "Return_Air_Temperature_Sensor",
       "Outside_Air_Temperature_Sensor", "Supply_Air_Static_Pressure_Sensor", "Supply_Air_Static_Pressure_Setpoint",
       "Supply_Air_Temperature_Setpoint", "Heating_Valve_Command", "Cooling_Valve_Command",
       "Outside_Air_Damper_Command", "Supply_Fan_Speed_Command", "Supply_Fan_Status"}


def test_every_rule_family_has_points(site: Site) -> None:
    ahus = _classes(site, {"ahu", "rtu"})
    assert sum(1 for c in ahus if G36 <= c) >= 4, "G36 AHU faults need the full AHU point set"
    assert any({"Zone_Air_Temperature_Sensor", "Zone_Air_Temperature_Setpoint"} <= c for c in _classes(site, {"vav"}))
    chiller = {"Chiller_Status", "Chiller_Power_Sensor", "Chilled_Water_Supply_Temperature_Sensor",
               "Chilled_Water_Return_Temperature_Sensor", "Cooling_Load_Sensor"}
    assert sum(1 for c in _classes(site, {"chiller"}) if chiller <= c) >= 3
    assert any({"Pump_Status", "Pump_Speed_Command"} <= c for c in _classes(site, {"pump"}))
    assert any({"Fan_Status", "Fan_Speed_Command"} <= c for c in _classes(site, {"fan", "cooling_tower"}))
    assert sum(len(c & {"Lighting_Status"}) for c in _classes(site, {"lighting"})) >= 10
    assert sum(1 for c in _classes(site, {"lift"}) if "Elevator_Status" in c) >= 6
    # safety: where each sensor lives matters to the rules
    assert any("Air_Temperature_Sensor" in c for c in _classes(site, {"switch_room"}))
    assert any("Transformer_Temperature_Sensor" in c for c in _classes(site, {"transformer"}))
    assert any("CO_Sensor" in c for c in _classes(site, {"garage"}))
    assert any("CO2_Sensor" in c for c in _classes(site, {"zone", "vav", "rtu"}))
    assert any("Combustible_Gas_Sensor" in c for c in _classes(site, {"kitchen"}))
    every = set().union(*_classes(site, set(k for f in site.files for k in (e.kind for e in f.equipment))))
    for cls in ("Leak_Sensor", "Smoke_Detection_Sensor", "Water_Usage_Sensor", "Gas_Usage_Sensor",
                "Phase_Voltage_Sensor", "Phase_Current_Sensor", "Power_Factor_Sensor", "Occupancy_Sensor"):
        assert cls in every, cls
    assert set(every) <= set(BRICK_CLASSES)


def test_meters_split_by_subitem(site: Site) -> None:
    per_building: dict[str, set[str]] = defaultdict(set)
    for f in site.files:
        for e in f.equipment:
            if e.kind != "meter":
                continue
            subs = {p.subitem for p in e.points if p.subitem}
            assert len(subs) == 1, (e.id, subs)
            power = [p for p in e.points if p.brick == "Electric_Power_Sensor" and p.unit == "kW"]
            energy = [p for p in e.points if p.brick == "Electric_Energy_Sensor" and p.unit == "kWh" and p.counter]
            assert power and energy, e.id
            if any(p.brick == "Phase_Current_Sensor" for p in e.points):
                assert e.breaker_rating_a, f"{e.id} needs breaker_rating_a for the over-current rule"
            per_building[f.building.id] |= subs
    full = {"lighting_sockets", "hvac", "power", "special", "total"}
    assert sum(1 for s in per_building.values() if s == full) >= 2
    assert all("total" in s for s in per_building.values())


def test_wireless_sensors_report_battery_and_rssi(site: Site) -> None:
    by_topic: dict[str, set[str]] = defaultdict(set)
    for r in site.points.values():
        if r.point.mqtt:
            assert r.device.topic_prefix == f"yuzhong/{r.building.id}"
            assert r.point.mqtt.topic.startswith(r.device.topic_prefix + "/")
            by_topic[r.point.mqtt.topic].add(r.point.brick)
    assert len(by_topic) >= 20
    for topic, classes in by_topic.items():
        assert {"Battery_Level_Sensor", "Signal_Strength_Sensor"} <= classes, topic


def test_modbus_decoding_varies(site: Site) -> None:
    srcs = [r.point.modbus for r in site.points.values() if r.point.modbus]
    kinds = Counter()
    for s in srcs:
        kinds[s.type.value] += 1
        if s.type == ModbusType.INT16 and s.scale == 0.1:
            kinds["int16x0.1"] += 1
        if s.type == ModbusType.FLOAT32:
            kinds[f"float32/{s.word_order}"] += 1
        if s.type == ModbusType.BIT:
            kinds["bit-in-register" if s.bit is not None else s.function.value] += 1
    counters = [r.point for r in site.points.values() if r.point.counter and r.point.modbus]
    assert any(p.modbus.type == ModbusType.UINT32 for p in counters)
    for k in ("int16x0.1", "uint16", "uint32", "float32/big", "float32/little", "float64", "bit-in-register", "coil",
              "discrete_input"):
        assert kinds[k] > 0, k


def test_addresses(site: Site) -> None:
    modbus_ports: dict[int, set[int]] = defaultdict(set)
    bacnet_ports, instances = [], []
    for _b, d in site.devices.values():
        if d.protocol == Protocol.MODBUS:
            assert d.host == "127.0.0.1" and d.port >= 15020
            modbus_ports[d.port].add(d.unit_id)
        elif d.protocol == Protocol.BACNET:
            assert d.host == "127.0.0.1" and d.port >= 47810
            bacnet_ports.append(d.port)
            instances.append(d.device_instance)
    assert len(bacnet_ports) == len(set(bacnet_ports)) >= 4
    assert len(instances) == len(set(instances))
    assert sum(1 for units in modbus_ports.values() if len(units) >= 4) >= 3  # RS-485 gateways
    # the BACnet fallbacks have devices to exercise them
    devs = [d for _b, d in site.devices.values() if d.protocol == Protocol.BACNET]
    assert any(not d.rpm for d in devs) and any(not d.segmentation for d in devs)


def test_points_are_described(site: Site) -> None:
    for r in site.points.values():
        p = r.point
        assert p.name_zh, r.key
        if p.unit != "bool":
            assert p.range is not None, f"{r.key} needs a range"
        interval = p.poll_interval_s or r.device.poll_interval_s
        assert 1 <= interval <= 900, r.key
