"""The site model and loader: every broken field names its file, line and field; nothing loads half."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from buildings.site import Protocol, SiteError, load_building_file, load_site
from tests.buildings.conftest import BASE, edit


def problems_of(path: Path) -> list:
    with pytest.raises(SiteError) as info:
        load_site(str(path))
    return info.value.problems


def test_base_file_is_valid(write_site) -> None:
    site = load_site(str(write_site(a=BASE)))
    assert site.summary()["points_by_protocol"] == {"modbus": 5, "bacnet": 1, "mqtt": 2}
    ref = site.points["test-tower/e-kwh"]
    assert ref.device.id == "meter" and ref.equipment.id == "meter-main" and ref.point.counter
    assert ref.point.modbus.count == 2
    assert site.devices["test-tower/ahu-ctl"][1].protocol == Protocol.BACNET


# (old text, new text, field, words the message or hint must contain)
BROKEN = {
    "unknown device": (
        "modbus: {device: meter, address: 0, type: float32}", "modbus: {device: metre, address: 0, type: float32}",
        "equipment[0].points[0].modbus.device", ["'metre' does not exist", "did you mean 'meter'"]),
    "device of another protocol": (
        "modbus: {device: meter, address: 0, type: float32}", "modbus: {device: ahu-ctl, address: 0, type: float32}",
        "equipment[0].points[0].modbus.device", ["speaks bacnet, not modbus"]),
    "float32 at an odd register overlapping another point": (
        "modbus: {device: meter, address: 2, type: uint32, scale: 0.01}",
        "modbus: {device: meter, address: 1, type: float32}",
        "equipment[0].points[1].modbus.address", ["holding registers 1-2 (float32) overlap point 'p-kw' at 0-1"]),
    "unit typo": (
        "        unit: kW\n", "        unit: KW\n", "equipment[0].points[0].unit", ["unknown unit 'KW'",
                                                                             "did you mean 'kW'"]),
    "unit of the wrong quantity": (
        "        unit: kWh\n", "        unit: kW\n", "equipment[0].points[1].unit",
        ["measures power", "Electric_Energy_Sensor measures energy"]),
    "unknown Brick class": (
        "brick: Supply_Air_Temperature_Sensor", "brick: Supply_Air_Temprature_Sensor",
        "equipment[1].points[0].brick", ["unknown Brick class", "did you mean 'Supply_Air_Temperature_Sensor'"]),
    "duplicate point id": (
        "      - id: e-kwh\n", "      - id: p-kw\n", "equipment[0].points[1].id", ["duplicate point id 'p-kw'"]),
    "duplicate device id": (
        "  - {id: meter-2, protocol: modbus", "  - {id: meter, protocol: modbus", "devices[1].id",
        ["duplicate device id 'meter'"]),
    "duplicate equipment id": (
        "  - id: zone-1\n", "  - id: ahu-1\n", "equipment[2].id", ["duplicate equipment id 'ahu-1'"]),
    "same bit twice in a register": (
        "modbus: {device: meter, address: 10, type: bit, bit: 1}",
        "modbus: {device: meter, address: 10, type: bit, bit: 0}",
        "equipment[0].points[3].modbus.bit", ["bit 0 of register 10 is already point 'status-a'"]),
    "a register value over a bit": (
        "modbus: {device: meter, address: 10, type: bit, bit: 1}", "modbus: {device: meter, address: 10, type: int16}",
        "equipment[0].points[3].modbus.address", ["holding register 10 (int16) overlaps point 'status-a' at 10"]),
    "two points on one coil": (
        "modbus: {device: meter, function: coil, address: 0, type: bit}",
        "modbus: {device: meter, function: coil, address: 0, type: bit}\n"
        "      - {id: lights-2, name: L2, brick: Lighting_Status, unit: bool,\n"
        "         modbus: {device: meter, function: coil, address: 0, type: bit}}",
        "equipment[0].points[5].modbus.address", ["coil 0 is already point 'lights'"]),
    "extra key": (
        "        unit: degC\n        range: [0, 50]\n", "        unit: degC\n        colour: red\n",
        "equipment[1].points[0].colour", ["Extra inputs are not permitted", "remove or rename the key"]),
    "misspelt key": (
        "        unit: degC\n        range: [0, 50]\n", "        unit: degC\n        ragne: [0, 50]\n",
        "equipment[1].points[0].ragne", ["remove or rename the key (did you mean 'range'?)"]),
    "missing required field": (
        "    name: AHU 1\n    kind: ahu\n", "    kind: ahu\n", "equipment[1].name", ["Field required"]),
    "two sources on one point": (
        "        range: [0, 50]\n        bacnet:", "        mqtt: {device: gw, topic: yuzhong/test-tower/x}\n"
        "        bacnet:", "equipment[1].points[0]", ["exactly one source"]),
    "range upside down": (
        "        range: [0, 500]\n", "        range: [500, 0]\n", "equipment[0].points[0]",
        ["range min 500.0 must be below max 0.0"]),
    "topic outside the device's prefix": (
        "topic: yuzhong/test-tower/th-1, value_path: temperature",
        "topic: yuzhong/other-tower/th-1, value_path: temperature",
        "equipment[2].points[0].mqtt.topic", ["not below the device's topic_prefix 'yuzhong/test-tower'"]),
    "two points on one JSON value": (
        "value_path: battery}", "value_path: temperature}", "equipment[2].points[1].mqtt.value_path",
        ["already point 'zat'"]),
    "wildcard topic": (
        "topic: yuzhong/test-tower/th-1, value_path: temperature", "topic: yuzhong/test-tower/+, value_path: t",
        "equipment[2].points[0].mqtt.topic", ["no + or # wildcards"]),
    "Modbus device without unit id": (
        "port: 15020, unit_id: 2}", "port: 15021}", "devices[1]", ["needs unit_id"]),
    "two devices at one address": (
        "port: 15020, unit_id: 2}", "port: 15020, unit_id: 1}", "devices[1].port", ["same address as 'meter'"]),
    "unknown equipment kind": (
        "    kind: ahu\n", "    kind: air_handler\n", "equipment[1].kind", ["unknown equipment kind 'air_handler'"]),
    "schedule ending before it starts": (
        'weekdays: ["08:00", "18:00"]', 'weekdays: ["18:00", "08:00"]', "building.schedule",
        ["weekdays: start 18:00 must be before end 08:00"]),
    "range impossible for the unit": (
        "        range: [0, 50]\n        bacnet:", "        range: [-300, 50]\n        bacnet:",
        "equipment[1].points[0].range",
        ["range [-300, 50] is outside what degC can be (-100 to 1500)"]),
    "owners larger than the building": (
        "area_m2: 9000}", "area_m2: 19000}", "building.owners", ["more than the gross floor area 10000"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_field_names_file_line_field(write_site, case: str) -> None:
    old, new, field, words = BROKEN[case]
    text, line = edit(BASE, old, new)
    folder = write_site(b=text)
    problems = problems_of(folder)
    match = [p for p in problems if p.field == field]
    assert match, f"no problem on {field}; got {[str(p) for p in problems]}"
    p = match[0]
    assert p.file == str(folder / "b.yaml")
    full = str(p)
    for w in words:
        assert w in full, f"{w!r} not in {full!r}"
    # the line is the line of the edit (a missing field points at its parent item, a few lines up)
    assert p.line is not None and line - 4 <= p.line <= line + new.count("\n"), (p.line, line, full)
    assert full.startswith(f"{folder / 'b.yaml'}:{p.line}: {field}: ")


def test_bad_yaml_syntax_names_the_line(write_site) -> None:
    text, line = edit(BASE, "  - {id: meter-2, protocol: modbus,", "  - {id: meter-2 protocol: [modbus,")
    problems = problems_of(write_site(b=text))
    assert len(problems) == 1 and problems[0].field == "(yaml)"
    assert problems[0].line is not None and abs(problems[0].line - line) <= 1
    assert "indentation" in problems[0].hint


def test_duplicate_key_names_the_line(write_site) -> None:
    text, line = edit(BASE, "        unit: kW\n", "        unit: kW\n        unit: kWh\n")
    problems = problems_of(write_site(b=text))
    assert problems[0].field == "(yaml)" and problems[0].line == line + 1 and "duplicate key" in problems[0].message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("Test Road", "Stra\u00dfe").encode("latin-1", errors="replace"))  # ß = 0xdf
    p = problems_of(path)[0]
    assert p.field == "(file)" and "not UTF-8" in p.message and "UTF-8" in p.hint


def test_not_a_mapping(write_site) -> None:
    problems = problems_of(write_site(b="- just\n- a list\n"))
    assert problems[0].line == 1 and "expected a mapping" in problems[0].message


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    assert "No such file" in problems_of(tmp_path / "nope.yaml")[0].message
    (tmp_path / "empty").mkdir()
    assert "no .yaml building files" in problems_of(tmp_path / "empty")[0].message


def test_folder_is_all_or_nothing(write_site) -> None:
    """One broken file among good ones: load_site raises with that file's problems and loads nothing."""
    good2 = BASE.replace("id: test-tower", "id: second-tower").replace("yuzhong/test-tower", "yuzhong/second-tower")
    good2 = good2.replace("port: 15020", "port: 15030").replace("port: 47810, device_instance: 100",
                                                                  "port: 47811, device_instance: 101")
    broken, _ = edit(BASE.replace("id: test-tower", "id: third-tower").replace("yuzhong/test-tower",
                                                                               "yuzhong/third-tower"),
                     "unit: degC\n        range: [0, 50]", "unit: degF\n        range: [0, 50]")
    folder = write_site(a=BASE, b=good2)
    assert len(load_site(str(folder)).files) == 2
    folder = write_site(c=broken)
    problems = problems_of(folder)
    assert {p.file for p in problems} == {str(folder / "c.yaml")}
    # the problems of every file are reported in one go
    (folder / "d.yaml").write_text(good2.replace("kind: zone", "kind: zoen"), encoding="utf-8")
    got = {(Path(p.file).name, p.field) for p in problems_of(folder)}
    assert got == {("c.yaml", "equipment[1].points[0].unit"), ("d.yaml", "equipment[2].kind")}


def test_files_starting_with_underscore_are_ignored(write_site) -> None:
    folder = write_site(a=BASE, _draft="not: [valid")
    assert len(load_site(str(folder)).files) == 1


def test_site_wide_collisions(write_site) -> None:
    """Two buildings cannot share a building id, a Modbus unit on one port, a BACnet port or instance."""
    other = BASE.replace("yuzhong/test-tower", "yuzhong/other-tower")
    folder = write_site(a=BASE, b=other)
    problems = problems_of(folder)
    fields = {(Path(p.file).name, p.field) for p in problems}
    assert ("b.yaml", "building.id") in fields
    assert ("b.yaml", "devices[0].unit_id") in fields
    assert ("b.yaml", "devices[2].port") in fields
    assert ("b.yaml", "devices[2].device_instance") in fields
    msg = next(str(p) for p in problems if p.field == "devices[0].unit_id")
    assert "same address as device 'meter' in" in msg and "a.yaml" in msg
    # the same building id, named with its line
    bid = next(p for p in problems if p.field == "building.id")
    assert bid.line == 2


def test_bacnet_instance_unique_in_a_file(write_site) -> None:
    text, line = edit(BASE, "  - {id: gw, protocol: mqtt", "  - {id: ahu-ctl-2, protocol: bacnet, port: 47812, "
                      "device_instance: 100}\n  - {id: gw, protocol: mqtt")
    problems = problems_of(write_site(a=text))
    p = next(p for p in problems if p.field == "devices[3].device_instance")
    assert p.line == line and "same device_instance as 'ahu-ctl'" in p.message


def test_schedule_holidays_and_make_up_days(write_site) -> None:
    bf = load_building_file(str(write_site(a=BASE) / "a.yaml"))
    s = bf.building.schedule
    assert s.is_occupied(dt.datetime(2026, 11, 26, 9, 0))  # Thursday
    assert not s.is_occupied(dt.datetime(2026, 11, 26, 18, 0))  # end is exclusive
    assert not s.is_occupied(dt.datetime(2026, 11, 26, 7, 59))
    assert s.is_occupied(dt.datetime(2026, 11, 28, 11, 0))  # Saturday morning
    assert not s.is_occupied(dt.datetime(2026, 11, 29, 11, 0))  # Sunday
    assert not s.is_occupied(dt.datetime(2026, 10, 1, 10, 0))  # National Day, a Thursday
    assert s.is_occupied(dt.datetime(2026, 10, 10, 17, 0))  # make-up Saturday runs weekday hours
    assert s.hours_for(dt.date(2026, 10, 10)) == (8.0, 18.0)


def test_with_free_ports_keeps_gateways_shared(write_site) -> None:
    site = load_site(str(write_site(a=BASE)))
    moved = site.with_free_ports()
    devs = {d.id: d for d in moved.files[0].devices}
    assert devs["meter"].port == devs["meter-2"].port != 15020  # two unit ids behind one gateway stay together
    assert devs["ahu-ctl"].port != 47810
    assert devs["gw"].port is None
    assert site.files[0].devices[0].port == 15020  # the original is untouched


def test_fast_path_reads_like_the_round_trip_loader(write_site, sample_site_path: Path) -> None:
    """libyaml (fast) and ruamel (line numbers) must give the same model, YAML 1.1 traps included."""
    from buildings.site import _checked_round_trip, _fast_building_file

    tricky = (BASE.replace("en: Test Tower", "en: no").replace('["08:00", "18:00"]', "[08:00, 18:00]")
              .replace("year_built: 1995", "year_built: 1995\n  floors_above: 010\n  floors_below: 0x1")
              .replace("area_m2: 9000}", "area_m2: 9.0e+3}"))
    paths = [write_site(t=tricky) / "t.yaml", *sorted(sample_site_path.glob("*.yaml"))]
    for path in paths:
        fast = _fast_building_file(str(path))
        assert fast is not None, path
        assert fast.model_dump() == _checked_round_trip(str(path))[0].model_dump(), path
    b = _fast_building_file(str(paths[0])).building
    assert (b.name.en, b.schedule.weekdays, b.floors_above, b.floors_below) == ("no", ("08:00", "18:00"), 10, 1)
    # a duplicate key is not silently resolved by the fast path (ruamel then reports it with its line)
    dup, _ = edit(BASE, "        unit: kW\n", "        unit: kW\n        unit: kWh\n")
    assert _fast_building_file(str(write_site(d=dup) / "d.yaml")) is None


def test_json_site_file_reads_like_yaml_and_errors_keep_their_lines(write_site, sample_site_path: Path) -> None:
    """A JSON building file (generated by tools) is read by the json module; same model as the YAML reading, and a
    duplicate key or a bad field still goes to ruamel, which names the line."""
    import json as _json

    from buildings.site import _checked_round_trip, _fast_building_file

    for path in sorted(sample_site_path.glob("*.yaml"))[:2]:
        want = _checked_round_trip(str(path))[0]
        doc = _plain_yaml(path)
        folder = write_site(**{path.stem: _json.dumps(doc, ensure_ascii=False, indent=1)})
        got = _fast_building_file(str(folder / f"{path.stem}.yaml"))
        assert got is not None and got.model_dump() == want.model_dump(), path
    text = _json.dumps(_plain_yaml(sorted(sample_site_path.glob("*.yaml"))[0]), ensure_ascii=False, indent=1)
    dup = text.replace('"year_built":', '"year_built": 1990,\n  "year_built":', 1)
    assert _fast_building_file(str(write_site(j=dup) / "j.yaml")) is None
    bad = text.replace('"year_built": ', '"year_built": "long ago", "x": ', 1)
    with pytest.raises(SiteError) as err:
        load_site(str(write_site(j=bad)))
    problem = err.value.problems[0]
    assert problem.field.endswith("year_built") and problem.line == bad[:bad.index('"long ago"')].count("\n") + 1


def _plain_yaml(path: Path) -> dict:
    """The file's data as JSON can hold it (YAML 1.2 scalars as the loader reads them, dates as ISO text)."""
    import json as _json

    import yaml

    from buildings.site import _fast_loader

    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_fast_loader())  # noqa: S506 - a safe loader
    return _json.loads(_json.dumps(data, default=str))
