"""Our BACnet collector and discovery against a third stack, rusty-bacnet (PyPI; Rust, ASHRAE 135-2020), in the
one case the bacnet-js device cannot play: a device that *does* segment, so large RPM and object-list answers
arrive in segments from an implementation that is not bacpypes3."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from buildings.site import Site
from collectors.collector import Collector
from collectors.discover import discover_bacnet
from collectors.pipeline import MemorySink
from collectors.poller import Health
from retrofit.devservers import free_udp_port
from telemetry.reading import Quality
from tests.collectors.conftest import building_doc, point, write_site

N_AI = 200  # one RPM of 200 present-values: about 3 kB, three 1476-byte segments
INSTANCE = 4321


def value(i: int) -> float:
    return 15.0 + i * 0.125  # exact in float32


async def start_device(port: int) -> Any:
    from rusty_bacnet import BACnetServer, Segmentation

    server = BACnetServer(device_instance=INSTANCE, device_name="rusty-ahu", interface="127.0.0.1", port=port,
                          broadcast_address="127.255.255.255", segmentation_supported=Segmentation.BOTH)
    for i in range(1, N_AI + 1):
        server.add_analog_input(i, f"ai-{i}", units=62, present_value=value(i))
    await server.start()
    return server


def site_for(tmp_path: Path, port: int) -> Site:
    dev = {"id": "ahu", "protocol": "bacnet", "port": port, "device_instance": INSTANCE, "poll_interval_s": 0.5,
           "timeout_s": 3.0, "max_points": N_AI, "segmentation": True}
    pts = [point(f"ai-{i}", {"device": "ahu", "object_type": "analog-input", "instance": i}, "bacnet",
                 brick="Point", unit="") for i in range(1, N_AI + 1)]
    return write_site(tmp_path / "s", [building_doc("b1", [dev], pts)])


def test_segmented_answers_from_a_rust_stack(tmp_path: Path) -> None:
    port = free_udp_port()
    site = site_for(tmp_path, port)
    want = {f"b1/ai-{i}": value(i) for i in range(1, N_AI + 1)}

    async def main() -> tuple[Collector, MemorySink, list[Any]]:
        server = await start_device(port)
        try:
            found = await discover_bacnet([f"127.0.0.1:{port}"], timeout_s=3.0)
            sink = MemorySink()
            collector = Collector(site, [sink])
            stop = asyncio.Event()
            task = asyncio.create_task(collector.run(stop))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                last = {r.point: r for r in sink.readings}
                if collector.pollers and collector.pollers["b1/ahu"].status.polls >= 3 and all(
                        k in last and last[k].quality is Quality.GOOD for k in want):
                    break
            stop.set()
            await task
            return collector, sink, found
        finally:
            await server.stop()

    collector, sink, found = asyncio.run(main())
    assert len(found) == 1 and found[0].segmentation, found
    assert len(found[0].objects) == N_AI  # the 201-entry object-list came whole, segmented
    last = {r.point: r for r in sink.readings}
    for k, v in want.items():
        assert last[k].quality is Quality.GOOD and last[k].value == pytest.approx(v), (k, last.get(k))
    st = collector.pollers["b1/ahu"].status
    assert st.health is Health.OK and st.errors == 0, st.last_error
    # two RPMs a poll (146 + 54 properties: our request must fit the device's 1476-byte APDU); the larger
    # answer, about 2.3 kB, arrived segmented rather than being split into more requests
    assert st.requests <= 2 * st.polls, (st.requests, st.polls)
