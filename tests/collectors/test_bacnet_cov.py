"""BACnet COV against our simulator over real UDP: subscribed points are not polled, subscriptions are renewed
before their lifetime ends, and a refused or lapsed subscription falls back to polling (collectors/drivers/
bacnet_cov.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from buildings.site import Site
from collectors.collector import Collector
from collectors.drivers.bacnet_cov import CovState
from collectors.pipeline import MemorySink
from retrofit.devservers import free_udp_port
from simulators.servers.bacnet import BacnetDeviceServer, start_bacnet
from simulators.values import DeviceMode
from tests.collectors.conftest import DictValues, building_doc, point, write_site

COV_KEYS = [f"b1/av{i}" for i in range(3)]


def cov_site(tmp_path: Path) -> Site:
    devices = [{"id": "ctl", "protocol": "bacnet", "port": free_udp_port(), "device_instance": 1501,
                "poll_interval_s": 0.2, "timeout_s": 0.5}]
    pts = [point(f"av{i}", {"device": "ctl", "object_type": "analog-value", "instance": i, "cov": True}, "bacnet")
           for i in range(3)]
    pts += [point(f"ai{i}", {"device": "ctl", "object_type": "analog-input", "instance": i}, "bacnet")
            for i in range(2)]
    return write_site(tmp_path / "s", [building_doc("b1", devices, pts)])


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def watch_polls(server: BacnetDeviceServer) -> list[set[str]]:
    """Record, at the device, which object types each ReadPropertyMultiple asked for."""
    asked: list[set[str]] = []
    original = server.present_values_rpm

    def spy(specs: Any) -> bytes | None:
        asked.append({str(spec.objectIdentifier[0]) for spec in specs})
        return original(specs)

    server.present_values_rpm = spy  # type: ignore[method-assign]
    return asked


def run(site: Site, values: DictValues, body: Callable[[Collector, BacnetDeviceServer, MemorySink], Awaitable[None]],
        refuse: bool = False) -> MemorySink:
    async def main() -> MemorySink:
        servers = await start_bacnet(site, values, refresh_s=0.05)
        servers[0].refuse_cov = refuse
        sink = MemorySink()
        collector = Collector(site, [sink], cov_lifetime_s=2, backoff_max_s=1.0)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            await asyncio.wait_for(collector.ready.wait(), 10)
            await body(collector, servers[0], sink)
        finally:
            stop.set()
            await task
            for s in servers:
                await s.stop()
        return sink

    return asyncio.run(main())


def cov_of(collector: Collector) -> Any:
    return collector.pollers["b1/ctl"].driver.cov  # type: ignore[attr-defined]


def test_subscribed_points_are_not_polled_and_subscriptions_are_renewed(tmp_path: Path) -> None:
    site = cov_site(tmp_path)
    values = DictValues({k: 10.0 for k in COV_KEYS}, default=5.0)

    async def body(collector: Collector, server: BacnetDeviceServer, sink: MemorySink) -> None:
        cov = cov_of(collector)
        await until(lambda: cov.covered == set(COV_KEYS), 10, "three live subscriptions")
        await asyncio.sleep(0.5)  # an RPM sent just before the last subscription went live may still be answered
        asked = watch_polls(server)
        first = cov.subscribes
        await asyncio.sleep(3.5)  # lifetime 2 s: renewed at 1.5 s and 3 s, or the device would have dropped us
        values.values["b1/av1"] = 17.5
        await until(lambda: any(r.point == "b1/av1" and r.value == 17.5 for r in sink.readings), 5, "the change")
        assert asked and all(kinds == {"analog-input"} for kinds in asked), asked  # polls skip COV points
        assert cov.subscribes - first >= 2 * len(COV_KEYS), (first, cov.subscribes)
        assert all(s is CovState.ACTIVE for s in cov.state.values())
        assert collector.status()["push"][0]["cov_active"] == 3

    run(site, values, body)


def test_refused_subscription_falls_back_to_polling(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = cov_site(tmp_path)
    values = DictValues({k: 10.0 for k in COV_KEYS}, default=5.0)

    async def body(collector: Collector, server: BacnetDeviceServer, sink: MemorySink) -> None:
        cov = cov_of(collector)
        await until(lambda: all(s is CovState.REFUSED for s in cov.state.values()), 10, "three refusals")
        asked = watch_polls(server)
        values.values["b1/av2"] = 13.25
        await until(lambda: any(r.point == "b1/av2" and r.value == 13.25 for r in sink.readings), 5, "the change")
        assert any("analog-value" in kinds for kinds in asked)  # polled, since the device will not push
        assert not cov.covered

    with caplog.at_level(logging.INFO, logger="collectors"):
        run(site, values, body, refuse=True)
    refused = [r for r in caplog.records if "refused COV" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]  # once per device, not once per point
    assert "unrecognized-service" in refused[0].getMessage() or "unrecognizedService" in refused[0].getMessage()


def test_lapsed_subscription_is_polled_until_re_subscribed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = cov_site(tmp_path)
    values = DictValues({k: 10.0 for k in COV_KEYS}, default=5.0)

    async def body(collector: Collector, server: BacnetDeviceServer, sink: MemorySink) -> None:
        cov = cov_of(collector)
        await until(lambda: cov.covered == set(COV_KEYS), 10, "three live subscriptions")
        values.modes["b1/ctl"] = DeviceMode.OFFLINE  # the renewal goes unanswered: the subscriptions lapse
        await until(lambda: all(s is CovState.LAPSED for s in cov.state.values()), 10, "three lapses")
        asked = watch_polls(server)
        values.modes["b1/ctl"] = DeviceMode.OK
        await until(lambda: any("analog-value" in kinds for kinds in asked), 10, "COV points polled again")
        await until(lambda: cov.covered == set(COV_KEYS), 20, "re-subscribed")
        values.values["b1/av0"] = 19.0
        await until(lambda: any(r.point == "b1/av0" and r.value == 19.0 for r in sink.readings), 5, "the change")

    with caplog.at_level(logging.INFO, logger="collectors"):
        run(site, values, body)
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "lapsed" in m]) == 1, messages
    assert len([m for m in messages if "re-established" in m]) == 1, messages
