"""The planner: fewest Modbus reads (limits, gaps, function codes, unit ids), BACnet RPM sizing, intervals."""

from __future__ import annotations

from pathlib import Path

from buildings.site import ModbusSource
from collectors.planner import coalesce_modbus, format_plan, plan_site, rpm_capacity
from tests.collectors.conftest import building_doc, point, write_site


def src(address: int, type_: str = "uint16", function: str = "holding", **kw: object) -> ModbusSource:
    return ModbusSource(device="d", address=address, type=type_, function=function, **kw)


def items(*sources: ModbusSource) -> list[tuple[str, ModbusSource, None]]:
    return [(f"b/p{i}", s, None) for i, s in enumerate(sources)]


def spans(reads) -> list[tuple[str, int, int]]:
    return [(r.function.value, r.start, r.count) for r in reads]


def test_contiguous_points_become_one_read() -> None:
    reads = coalesce_modbus(items(*(src(i * 2, "float32") for i in range(10))), unit=1)
    assert spans(reads) == [("holding", 0, 20)]
    assert [p.offset for p in reads[0].points] == list(range(0, 20, 2))


def test_reads_never_exceed_max_registers() -> None:
    reads = coalesce_modbus(items(*(src(i * 2, "float32") for i in range(200))), unit=1)
    assert all(r.count <= 125 for r in reads)
    assert len(reads) == 4  # 400 registers: 124 + 124 + 124 + 28 (a float32 never straddles two reads)
    assert sum(len(r.points) for r in reads) == 200
    small = coalesce_modbus(items(*(src(i) for i in range(30))), unit=1, max_registers=10)
    assert spans(small) == [("holding", 0, 10), ("holding", 10, 10), ("holding", 20, 10)]


def test_gap_bridging_up_to_max_gap() -> None:
    reads = coalesce_modbus(items(src(0), src(9), src(30)), unit=1, max_gap=8)
    assert spans(reads) == [("holding", 0, 10), ("holding", 30, 1)]  # gap 8 bridged, gap 20 not
    assert spans(coalesce_modbus(items(src(0), src(9)), unit=1, max_gap=7)) == [("holding", 0, 1),
                                                                              ("holding", 9, 1)]


def test_never_across_function_codes() -> None:
    reads = coalesce_modbus(items(src(0), src(1, function="input"), src(2), src(0, "bit", "coil"),
                                  src(1, "bit", "coil")), unit=1)
    assert sorted(spans(reads)) == [("coil", 0, 2), ("holding", 0, 3), ("input", 1, 1)]


def test_bits_in_one_register_share_it() -> None:
    reads = coalesce_modbus(items(src(5, "bit", bit=0), src(5, "bit", bit=3), src(6)), unit=1)
    assert spans(reads) == [("holding", 5, 2)]
    assert [p.offset for p in reads[0].points] == [0, 0, 1]


def _site(tmp_path: Path, devices: list[dict], points: list[dict]):
    return write_site(tmp_path / "site", [building_doc("b1", devices, points)])


def test_plan_site_keeps_unit_ids_apart_and_groups_intervals(tmp_path: Path) -> None:
    devices = [{"id": "u1", "protocol": "modbus-rtu", "port": 1502, "unit_id": 1},
               {"id": "u2", "protocol": "modbus-rtu", "port": 1502, "unit_id": 2}]
    pts = [point(f"a{i}", {"device": "u1", "address": i, "type": "uint16"}, "modbus") for i in range(5)]
    pts += [point(f"b{i}", {"device": "u2", "address": i, "type": "uint16"}, "modbus") for i in range(5)]
    pts.append(point("slow", {"device": "u1", "address": 5, "type": "uint16"}, "modbus", poll_interval_s=600))
    plans = plan_site(_site(tmp_path, devices, pts))
    assert set(plans) == {"b1/u1", "b1/u2"}
    u1 = plans["b1/u1"]
    assert [(g.interval_s, len(g.reads)) for g in u1.groups] == [(60.0, 1), (600.0, 1)]
    assert {r.unit for g in u1.groups for r in g.reads} == {1}
    assert {r.unit for g in plans["b1/u2"].groups for r in g.reads} == {2}
    text = format_plan(plans)
    assert "b1/u1 [modbus-rtu]" in text and "total: 11 points in 3 requests" in text


def test_bacnet_rpm_sized_to_apdu_and_rp_fallback(tmp_path: Path) -> None:
    devices = [{"id": "big", "protocol": "bacnet", "port": 47808, "device_instance": 1, "max_points": 40},
               {"id": "small", "protocol": "bacnet", "port": 47809, "device_instance": 2, "segmentation": False,
                "max_apdu": 206},
               {"id": "old", "protocol": "bacnet", "port": 47810, "device_instance": 3, "rpm": False}]
    pts = []
    for dev in ("big", "small", "old"):
        pts += [point(f"{dev}{i}", {"device": dev, "object_type": "analog-input", "instance": i}, "bacnet")
                for i in range(100)]
    site = _site(tmp_path, devices, pts)
    plans = plan_site(site)
    big = plans["b1/big"].groups[0].reads
    assert [len(r.points) for r in big] == [40, 40, 20] and all(r.rpm for r in big)
    small_dev = site.devices["b1/small"][1]
    cap = rpm_capacity(small_dev)
    assert 1 <= cap <= 20  # a 206-byte APDU holds a request for only ~19 properties
    assert all(len(r.points) <= cap for r in plans["b1/small"].groups[0].reads)
    old = plans["b1/old"].groups[0].reads
    assert len(old) == 100 and not any(r.rpm for r in old)


def test_learned_splits_apply_only_while_they_fit_the_site_file(tmp_path: Path) -> None:
    """A re-split learned by an earlier run (the status file's plan_changes) starts the next plan with its parts;
    one that no longer fits (the site file's addresses moved) is dropped, so it is learned again."""
    pts = [point(f"p{i}", {"device": "m", "address": 2 * i + (2 if i >= 5 else 0)}, "modbus") for i in range(10)]
    site = write_site(tmp_path / "s", [building_doc("b1", [{"id": "m", "protocol": "modbus", "unit_id": 1}], pts)])
    (read,) = plan_site(site)["b1/m"].groups[0].reads
    assert read.describe() == "unit 1 holding 0-21 (22) -> 10 points"
    change = {"read": read.describe(), "reason": "exception 2 (illegal data address)", "parts": [[0, 10], [12, 10]]}
    plan = plan_site(site, {"b1/m": [change]})["b1/m"]
    assert spans(plan.groups[0].reads) == [("holding", 0, 10), ("holding", 12, 10)]
    assert plan.changes == (change,) and plan.point_count == 10
    for stale in ({**change, "read": "unit 1 holding 0-23 (24) -> 10 points"},  # the read is not planned now
                  {**change, "parts": [[0, 10], [14, 8]]}):  # a part that leaves a point out
        assert spans(plan_site(site, {"b1/m": [stale]})["b1/m"].groups[0].reads) == [("holding", 0, 22)]


def test_a_broken_status_file_never_stops_the_plan(tmp_path: Path) -> None:
    from collectors.pipeline import STATUS_FILE, learned_plan_changes

    site = write_site(tmp_path / "s", [building_doc("b1", [{"id": "m", "protocol": "modbus", "unit_id": 1}],
                                                    [point("p", {"device": "m", "address": 0}, "modbus")])])
    (read,) = plan_site(site)["b1/m"].groups[0].reads
    for text in ("[1, 2]", '{"devices": [1]}', '{"devices": {"b1/m": {"plan_changes": "x"}}}', "not json"):
        (tmp_path / STATUS_FILE).write_text(text)
        assert learned_plan_changes(tmp_path) == {}
    odd = [{"read": read.describe(), "parts": "0-1"}, {"read": read.describe(), "parts": [[0, "x"]]}, {"read": 3}]
    assert spans(plan_site(site, {"b1/m": odd})["b1/m"].groups[0].reads) == [("holding", 0, 2)]
