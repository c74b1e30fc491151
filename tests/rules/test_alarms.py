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
