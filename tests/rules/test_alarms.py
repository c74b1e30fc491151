"""Alarm records: lifecycle, de-duplication, acknowledgement, maintenance suppression, MQTT on a real broker."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from rules.alarms import AlarmBook, AlarmError, AlarmPublisher
from rules.engine import AlarmEvent
from rules.model import Family, Severity

T0 = 1772420400.0  # 2026-03-02 11:00 Asia/Shanghai


def ev(kind: str, ts: float, rule: str = "e-simultaneous-heat-cool", subject: str = "ahu-1",
       family: Family = Family.ENERGY, building: str = "b1", equipment: str = "ahu-1") -> AlarmEvent:
    return AlarmEvent(kind, rule, family, Severity.FAULT, building, equipment, subject, ts,
                      {"hc": 40.0, "cc": float("nan")}, "热水阀 40%", "heating valve 40 %")


@pytest.fixture()
def book(tmp_path) -> AlarmBook:
    b = AlarmBook(f"sqlite:///{tmp_path / 'records.db'}", reopen_s=3600)
    yield b
    b.close()


def test_lifecycle_raise_ack_clear(book: AlarmBook) -> None:
    [a] = book.apply([ev("raise", T0)])
    assert a.event == "raised" and a.alarm.state == "raised" and a.alarm.values == {"hc": 40.0, "cc": None}
    got = book.acknowledge(a.alarm.id, "zhang.wei", "valve actuator checked", at=T0 + 600)
    assert (got.state, got.acked_by, got.ack_comment, got.acked_at) == ("acknowledged", "zhang.wei",
                                                                         "valve actuator checked", T0 + 600)
    [c] = book.apply([ev("clear", T0 + 3600)])
    assert c.event == "cleared"
    row = book.get(a.alarm.id)
    assert (row.state, row.raised_at, row.cleared_at, row.acked_by) == ("cleared", T0, T0 + 3600, "zhang.wei")
    with pytest.raises(AlarmError, match="already acknowledged"):
        book.acknowledge(a.alarm.id, "li.na")
    with pytest.raises(AlarmError, match="no alarm with id 999"):
        book.acknowledge(999, "li.na")


def test_one_open_alarm_per_rule_and_subject(book: AlarmBook) -> None:
    book.apply([ev("raise", T0), ev("retrigger", T0 + 60), ev("raise", T0 + 120)])
    book.apply([ev("raise", T0, subject="ahu-2", equipment="ahu-2")])
    rows = book.list()
    assert len(rows) == 2
    one = next(r for r in rows if r.subject == "ahu-1")
    assert one.retriggers == 2 and one.last_triggered_at == T0 + 120
    # cleared, then raised again within reopen_s: the same alarm reopens (a flapping sensor is one alarm)
    book.apply([ev("clear", T0 + 600), ev("raise", T0 + 900)])
    rows = book.list(state="raised")
    assert len(book.list()) == 2 and {r.id for r in rows} >= {one.id}
    # cleared and quiet for longer than reopen_s: a new alarm
    book.apply([ev("clear", T0 + 1000), ev("raise", T0 + 1000 + 7200)])
    assert len(book.list()) == 3


def test_filters_for_the_dashboard(book: AlarmBook) -> None:
    book.apply([ev("raise", T0), ev("raise", T0, rule="s-water-leak", family=Family.SAFETY, subject="leak-1",
                                  building="b2", equipment="office-1")])
    assert [a.rule for a in book.list(buildings=["b2"])] == ["s-water-leak"]
    assert [a.rule for a in book.list(family="safety")] == ["s-water-leak"]
    assert len(book.list(family=["safety", "energy"], severity="fault", state=["raised"])) == 2
    assert book.list(buildings=[]) == []
    assert book.counts() == {"fault": 2}


def test_maintenance_suppresses_only_non_safety_alarms(book: AlarmBook) -> None:
    book.suppress("b1", T0 - 60, T0 + 3600, reason="coil cleaning", user="ops")
    book.apply([ev("raise", T0), ev("raise", T0, rule="s-water-leak", family=Family.SAFETY, subject="leak-1",
                                    equipment="office-1")])
    visible = book.list()
    assert [a.rule for a in visible] == ["s-water-leak"]  # safety: recorded, listed, flagged
    assert visible[0].during_maintenance and not visible[0].suppressed
    hidden = [a for a in book.list(include_suppressed=True) if a.suppressed]
    assert [a.rule for a in hidden] == ["e-simultaneous-heat-cool"]  # recorded, not shown by default
    with pytest.raises(AlarmError):
        book.suppress("b1", T0, T0 - 1)


def test_raise_and_clear_are_published_on_mqtt(tmp_path, mosquitto) -> None:
    got: list[tuple[str, dict]] = []
    ready = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("test-root/+/alarms/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    assert ready.wait(10)
    pub = AlarmPublisher(f"mqtt://127.0.0.1:{mosquitto.port}", root="test-root")
    book = AlarmBook(f"sqlite:///{tmp_path / 'r.db'}", publisher=pub)
    try:
        [a] = book.apply([ev("raise", T0)])
        book.acknowledge(a.alarm.id, "zhang.wei", "on it")
        book.apply([ev("clear", T0 + 600)])
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        book.close()
        sub.loop_stop()
        sub.disconnect()
    assert [t for t, _ in got] == ["test-root/b1/alarms/e-simultaneous-heat-cool"] * 3
    assert [d["event"] for _, d in got] == ["raised", "acknowledged", "cleared"]
    first = got[0][1]
    assert first["ts"] == T0 and first["message_zh"] == "热水阀 40%" and first["values"] == {"hc": 40.0, "cc": None}
    assert got[2][1]["state"] == "cleared" and got[2][1]["cleared_at"] == T0 + 600
    assert pub.published == 3


# --- flood control ------------------------------------------------------------------------------------------------


def spike(kind: str, ts: float, point: str, building: str = "b1", rule: str = "sv-spike",
          family: Family = Family.SENSOR_HEALTH) -> AlarmEvent:
    return AlarmEvent(kind, rule, family, Severity.WARNING, building, point.split("-")[0], point, ts,
                      {"x": 89.0}, f"{point} 突变", f"{point} jumped")


def test_a_burst_on_many_points_is_one_grouped_alarm(book: AlarmBook) -> None:
    """Every RH sensor of a building jumping at 18:30 is one alarm with the points listed, not 20."""
    points = [f"zone{i:02d}-rh" for i in range(20)]
    applied = book.apply([spike("raise", T0, p) for p in points] + [spike("raise", T0, "ahu1-sat", "b2")])
    assert [a.event for a in applied] == ["raised", "raised"]
    [group] = book.list(buildings=["b1"])
    assert (group.subject, group.points, group.open_points) == ("*", points, points)
    assert group.message_en == "zone00-rh jumped (20 points)" and group.message_zh == "zone00-rh 突变（共 20 个点）"
    assert book.list(buildings=["b2"])[0].points == []  # one point at that instant: a single alarm
    # a point of the same rule raising a minute later joins the open group; a re-raise counts on it
    book.apply([spike("raise", T0 + 60, "lobby-rh"), spike("raise", T0 + 60, "zone03-rh")])
    g = book.get(group.id)
    assert g.points == [*points, "lobby-rh"] and g.retriggers == 2 and len(book.list(buildings=["b1"])) == 1
    # lifecycle: acknowledge the group; it clears only when its last point has cleared
    assert book.acknowledge(group.id, "zhang.wei", "HVAC stop artefact").state == "acknowledged"
    assert book.apply([spike("clear", T0 + 900, p) for p in points]) == []
    assert book.get(group.id).state == "acknowledged" and book.get(group.id).open_points == ["lobby-rh"]
    [c] = book.apply([spike("clear", T0 + 960, "lobby-rh")])
    assert c.event == "cleared" and c.alarm.id == group.id
    assert book.get(group.id).cleared_at == T0 + 960 and book.get(group.id).acked_by == "zhang.wei"
    # the same burst the next day is a new grouped alarm (it quieted for longer than reopen_s)
    book.apply([spike("raise", T0 + 86400, p) for p in points[:5]])
    assert [(a.subject, len(a.points)) for a in book.list(buildings=["b1"], state="raised")] == [("*", 5)]


def test_a_rule_beyond_its_rate_limit_is_suppressed_and_counted(book: AlarmBook) -> None:
    """Defaults: 5 new alarms of one rule per building per 10 minutes; the rest recorded, hidden and counted."""
    book.apply([spike("raise", T0 + 60 * i, f"zone{i:02d}-rh") for i in range(8)])
    shown = book.list(buildings=["b1"])
    assert len(shown) == 5 and not any(a.flood for a in shown)
    held = [a for a in book.list(include_suppressed=True) if a.suppressed]
    assert len(held) == 3 and all(a.flood for a in held)
    [flood] = book.floods(now=T0 + 600)
    assert (flood.building, flood.suppressed, flood.by_rule, flood.active) == ("b1", 3, {"sv-spike": 3}, False)
    # once the window has passed the rule is annunciated again
    [a] = book.apply([spike("raise", T0 + 1500, "zone09-rh")])
    assert not a.alarm.suppressed and not a.alarm.flood


def test_building_limit_and_safety_alarms_are_never_hidden(tmp_path) -> None:
    from rules.alarms import FloodControl

    book = AlarmBook(f"sqlite:///{tmp_path / 'r.db'}",
                     flood=FloodControl(building_limit=4, rule_limit=0, rule_limits={"noisy": 1}))
    try:
        book.apply([spike("raise", T0 + i, f"p{i}-x", rule=f"rule-{i}") for i in range(4)])
        [over] = book.apply([spike("raise", T0 + 10, "p9-x", rule="rule-9")])
        [leak] = book.apply([spike("raise", T0 + 11, "leak-1", rule="s-water-leak", family=Family.SAFETY)])
        assert over.alarm.suppressed and over.alarm.flood
        assert leak.alarm.flood and not leak.alarm.suppressed  # safety: annunciated, flagged
        [f] = book.floods(now=T0 + 60)
        assert f.active and f.recent == 6 and f.limit == 4 and f.by_rule == {"rule-9": 1}
        book.apply([spike("raise", T0 + 9000, "q1-x", rule="noisy"), spike("raise", T0 + 9001, "q2-x", rule="noisy")])
        assert [a.suppressed for a in book.list(include_suppressed=True) if a.rule == "noisy"] == [True, False]
        assert book.floods(now=T0 + 9000 + 7 * 86400) == []  # nothing recent: no indicator
    finally:
        book.close()


def test_engine_burst_through_the_book_is_one_alarm(tmp_path, site, library) -> None:
    """The engine raising sv-range on every temperature of an AHU at one instant: one grouped alarm that clears
    when the last point is back in range."""
    from rules.engine import Engine
    from tests.rules.conftest import MONDAY, only, readings

    temps = ["sat", "mat", "rat", "oat"]
    bad = (MONDAY + 9 * 3600, MONDAY + 10 * 3600)
    series = {f"b1/{p}": (lambda t, p=p: 99.0 if bad[0] <= t < bad[1] + (600 if p == "oat" else 0) else 20.0)
              for p in temps}
    eng = Engine(site, only(library, "sv-range"), step_s=60.0)
    events = eng.feed(readings(series, MONDAY + 8 * 3600, MONDAY + 12 * 3600)) + eng.flush()
    raised = [e for e in events if e.kind == "raise"]
    assert len(raised) == 4 and len({e.ts for e in raised}) == 1
    book = AlarmBook(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        book.apply(events)
        [a] = book.list()
        assert (a.rule, a.subject, a.points, a.state) == ("sv-range", "*", sorted(temps), "cleared")
        last_clear = max(e.ts for e in events if e.kind == "clear" and e.subject == "oat")
        assert a.cleared_at == last_clear and a.raised_at == raised[0].ts
    finally:
        book.close()


def test_a_grouped_alarm_is_published_once_and_flood_suppressed_ones_not_at_all(tmp_path, mosquitto) -> None:
    from rules.alarms import FloodControl

    got: list[dict] = []
    ready = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("flood-root/+/alarms/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    assert ready.wait(10)
    pub = AlarmPublisher(f"mqtt://127.0.0.1:{mosquitto.port}", root="flood-root")
    book = AlarmBook(f"sqlite:///{tmp_path / 'r.db'}", publisher=pub, flood=FloodControl(rule_limit=1))
    try:
        book.apply([spike("raise", T0, f"zone{i:02d}-rh") for i in range(6)])  # one grouped alarm
        book.apply([spike("raise", T0 + 60, "ahu1-sat", rule="sv-flatline"),
                    spike("raise", T0 + 120, "ahu2-sat", rule="sv-flatline")])  # the second is over the limit
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # nothing more may arrive
    finally:
        book.close()
        sub.loop_stop()
        sub.disconnect()
    assert [(d["event"], d["rule"], d["subject"], len(d["points"])) for d in got] == [
        ("raised", "sv-spike", "*", 6), ("raised", "sv-flatline", "ahu1-sat", 0)]
    assert got[0]["points"] == [f"zone{i:02d}-rh" for i in range(6)] and not got[0]["flood"]
