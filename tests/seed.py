"""Seed a data directory the way a running district would have it, for the dashboard and API tests.

Both suites need the same thing: the sample district's simulated 15-minute history in an embedded store, the
sample programme in the records database (through Alembic, as `retrofit program import` does) and a few alarms
recorded through the rules' AlarmBook (open and cleared, in jiefangbei-tower and chaotianmen-harbour).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def alarm_event(kind: str, rule: str, building: str, subject: str, ts: float, family: str = "energy",
                severity: str = "fault", zh: str = "告警", en: str = "alarm") -> Any:
    """A rules-engine AlarmEvent, for feeding an AlarmBook directly."""
    from rules.engine import AlarmEvent
    from rules.model import Family, Severity

    return AlarmEvent(kind, rule, Family(family), Severity(severity), building, subject, subject, ts,
                      {"value": 1.0}, zh, en)


def seed_alarms(url: str, end: float) -> None:
    """Two alarms in jiefangbei-tower (one of them cleared), one in chaotianmen-harbour."""
    from rules.alarms import AlarmBook

    book = AlarmBook(url)
    book.apply([
        alarm_event("raise", "ahu-sat-high", "jiefangbei-tower", "ahu-1", end - 3 * 3600,
                    zh="1号空调箱送风温度过高", en="AHU-1 supply air too warm"),
        alarm_event("raise", "switch-room-hot", "jiefangbei-tower", "switch-room", end - 30 * 3600, "safety",
                    "critical", "配电室温度过高", "Switch room too hot"),
        alarm_event("raise", "co2-high", "chaotianmen-harbour", "ahu-1", end - 5 * 3600, "safety", "warning",
                    "港湾二氧化碳浓度高", "Harbour CO2 high"),
    ])
    book.apply([alarm_event("clear", "switch-room-hot", "jiefangbei-tower", "switch-room", end - 28 * 3600,
                            "safety", "critical")])
    book.close()


def seed_data_dir(data_dir: Path, site_path: Path, history_days: float) -> tuple[str, float]:
    """History up to now (rounded to 15 min) into DATA_DIR/telemetry.db, the sample programme and the alarms
    into DATA_DIR/records.db; returns (records URL, end of the history)."""
    from buildings.records.program import import_sample
    from buildings.site import load_site
    from simulators.history import backfill
    from telemetry.embedded import EmbeddedStore

    site = load_site(str(site_path))
    store = EmbeddedStore(data_dir / "telemetry.db")
    end = time.time() // 900 * 900
    backfill(site, store, end - history_days * 86400, end)
    store.close()
    url = f"sqlite:///{data_dir / 'records.db'}"
    import_sample(url, site, "tests").dispose()
    seed_alarms(url, end)
    return url, end
