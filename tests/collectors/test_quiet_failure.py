"""Quiet failure, as Home Assistant's coordinator does it: a device that is down for an hour logs a handful of
lines (the transition with its reason, the health change, a summary every 10 minutes, the recovery), while
its health and its readings' quality still change on every poll.

The device is a real closed TCP port (connection refused on every poll) and then a real Modbus server on that
port; only the clock of the log's summaries is simulated, so an hour of polls every 10 s runs in seconds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from collectors.drivers.modbus import ModbusDriver
from collectors.planner import plan_site
from collectors.poller import DevicePoller, Health, QuietLog
from retrofit.devservers import free_port
from simulators.servers.modbus import start_modbus
from telemetry.reading import Quality, Reading
from tests.collectors.conftest import DictValues, building_doc, point, write_site

INTERVAL_S = 10.0
HOUR_POLLS = int(3600 / INTERVAL_S)


def test_a_dead_device_for_an_hour_logs_a_handful_of_lines(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    site = write_site(tmp_path / "s", [building_doc("b1", [{"id": "m1", "protocol": "modbus", "port": port,
                                                             "unit_id": 1, "timeout_s": 0.5}],
                                                    [point(f"t{i}", {"device": "m1", "address": 2 * i}, "modbus")
                                                     for i in range(4)])])
    plan = plan_site(site)["b1/m1"]
    clock = [0.0]
    emitted: list[list[Reading]] = []
    healths: list[Health] = []

    async def emit(batch: list[Reading]) -> None:
        emitted.append(batch)

    async def main() -> None:
        poller = DevicePoller(plan, ModbusDriver("b1/m1", plan.device), emit,
                              quiet=QuietLog("b1/m1", clock=lambda: clock[0]))
        group = plan.groups[0]
        for _ in range(HOUR_POLLS):
            await poller.poll_group(group)
            healths.append(poller.status.health)
            clock[0] += INTERVAL_S
        servers = await start_modbus(site, DictValues({"b1/t0": 21.5}), refresh_s=0)
        try:
            await poller.poll_group(group)
            healths.append(poller.status.health)
        finally:
            for s in servers:
                await s.stop()
            await poller.driver.close()

    with caplog.at_level(logging.INFO, logger="collectors"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "b1/m1" in r.getMessage()]
    assert 4 <= len(lines) <= 12, "\n".join(lines)
    assert "cannot connect" in lines[0] and "check the address" in lines[0]  # the reason and what to check
    assert any("-> offline" in ln for ln in lines)
    summaries = [ln for ln in lines if "still offline after" in ln]
    assert 5 <= len(summaries) <= 6, summaries  # at most one per 10 minutes of the hour
    assert "recovered" in lines[-1]
    # ... but health and quality changed on every poll
    assert healths[0] is Health.DEGRADED and all(h is Health.OFFLINE for h in healths[1:HOUR_POLLS])
    assert healths[-1] is Health.OK
    assert len(emitted) == HOUR_POLLS + 1
    assert all(r.quality is Quality.COMM_FAILURE for batch in emitted[:-1] for r in batch)
    assert any(r.point == "b1/t0" and r.value == 21.5 and r.quality is Quality.GOOD for r in emitted[-1])


def test_a_new_kind_of_error_is_news_a_repeated_one_is_not(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    q = QuietLog("b1/x", clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="collectors"):
        q.poll(Health.OK, Health.DEGRADED, "unit 1 holding 0-9: no answer within 2 s")
        for i in range(20):
            clock[0] += 5
            q.poll(Health.DEGRADED, Health.DEGRADED, f"unit 1 holding {i}-{i + 9}: no answer within 2 s")
        q.poll(Health.DEGRADED, Health.DEGRADED, "unit 1 holding 0-9: Modbus exception 4 (server device failure)")
        clock[0] += 5
        q.poll(Health.DEGRADED, Health.OK, None)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "ok -> degraded" in lines[0] and "exception 4" in lines[1] and "recovered" in lines[2]
