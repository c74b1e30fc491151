"""The alarm page under an alarm flood (AppTest): one grouped alarm for a burst on many points, the flood
indicator in Chinese and English, suppressed alarms hidden until asked for."""

from __future__ import annotations

import time

from sqlalchemy import delete

from tests.dashboard.conftest import sign_in
from tests.seed import alarm_event

B = "daping-makerworks"
POINTS = ["iaq-cowork-a-temp", "iaq-cowork-b-temp", "iaq-meeting-temp", "iaq-workshop-temp", "iaq-cafe-temp"]


def test_flood_indicator_grouped_alarm_and_suppressed_alarms(dash_env) -> None:
    from rules.alarms import Alarm, AlarmBook

    book = AlarmBook(dash_env.records_url)
    now = time.time()
    try:
        # a burst of one rule on five points at one instant: one alarm with the points listed
        book.apply([alarm_event("raise", "sv-spike", B, p, now - 500, "sensor_health", "warning", "温度突变",
                                "Temperature jumped") for p in POINTS])
        # then twelve different rules, one each 30 s: over the building's 10 per 10 minutes, the rest held back
        book.apply([alarm_event("raise", f"rule-{i:02d}", B, POINTS[i % 5], now - 480 + 30 * i, "energy",
                                "advisory", f"规则{i}", f"rule {i}") for i in range(12)])
        at = sign_in("dora", query={"building": B})
        at.switch_page("pages/alarms.py").run()
        assert not at.exception, at.exception
        assert any("告警泛滥" in e.value and "13 条" in e.value for e in at.error), [e.value for e in at.error]
        assert any("泛滥抑制" in w.value and "3 条" in w.value for w in at.warning), [w.value for w in at.warning]
        active = at.dataframe[0].value
        mine = active[active["楼宇"].str.contains("大坪")] if "楼宇" in active else active
        grouped = [v for v in mine["设备"] if v.startswith("5 个点")]
        assert grouped == ["5 个点：" + ", ".join(sorted(POINTS))], list(mine["设备"])
        shown = len(mine)
        at.toggle(key="alarm_suppressed_zh").set_value(True).run()
        assert len(at.dataframe[0].value[at.dataframe[0].value["楼宇"].str.contains("大坪")]) == shown + 3
        at.session_state["lang"] = "en"
        at.run()
        assert not at.exception, at.exception
        assert any("Alarm flood" in e.value and "13 alarms" in e.value for e in at.error)
        assert any("Flood control: 3 alarms" in w.value for w in at.warning)
    finally:
        with book.Session.begin() as s:
            s.execute(delete(Alarm).where(Alarm.building == B))
        book.close()
