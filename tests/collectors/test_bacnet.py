"""BACnet/IP through real UDP sockets against our simulator (simulators/servers/bacnet.py): RPM, per-property
errors, RPM rejected -> ReadProperty, unsegmented devices, Error / garbage / silence, COV."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

import pytest

from buildings.site import Site
from collectors.collector import Collector
from collectors.pipeline import MemorySink
from collectors.poller import Health
from retrofit.devservers import free_udp_port
from simulators.servers.bacnet import start_bacnet
from simulators.values import DeviceMode
from telemetry.reading import Quality
from tests.collectors.conftest import DictValues, building_doc, point, write_site


def bacnet_site(tmp_path: Path, n: int = 12, interval: float = 0.5, **dev: object) -> Site:
    devices = [{"id": "ctl", "protocol": "bacnet", "port": free_udp_port(), "device_instance": 1201,
                "poll_interval_s": interval, "timeout_s": 0.5, **dev},
               {"id": "ctl2", "protocol": "bacnet", "port": free_udp_port(), "device_instance": 1202,
                "poll_interval_s": interval, "timeout_s": 0.5}]
    pts = [point(f"ai{i}", {"device": "ctl", "object_type": "analog-input", "instance": i}, "bacnet",
                 range=[-50, 150]) for i in range(n)]
    pts.append(point("bv", {"device": "ctl", "object_type": "binary-value", "instance": 1}, "bacnet",
                     brick="Fan_Status", unit="bool"))
    pts += [point(f"x{i}", {"device": "ctl2", "object_type": "analog-value", "instance": i}, "bacnet")
            for i in range(3)]
    return write_site(tmp_path / "s", [building_doc("b1", devices, pts)])


def run(site: Site, values: DictValues, seconds: float, between=None, sim_site: Site | None = None,
        **kw: object) -> tuple[Collector, MemorySink]:
    async def main() -> tuple[Collector, MemorySink]:
        servers = await start_bacnet(sim_site or site, values, refresh_s=0.05)
        sink = MemorySink()
        collector = Collector(site, [sink], **kw)  # type: ignore[arg-type]
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            await asyncio.sleep(seconds)
            if between is not None:
                between()
                await asyncio.sleep(seconds)
        finally:
            stop.set()
            await task
            for s in servers:
                await s.stop()
        return collector, sink

    return asyncio.run(main())


def _values(n: int = 12) -> DictValues:
    v = DictValues({f"b1/ai{i}": 20.0 + i / 4 for i in range(n)}, default=5.0)
    v.values["b1/bv"] = 1.0
    v.values["b1/ai3"] = 400.0  # outside the declared range
    return v


@pytest.mark.parametrize("dev", [{}, {"rpm": False}, {"segmentation": False, "max_apdu": 206},
                                 {"segmentation": False, "max_apdu": 206, "lie": True}],
                         ids=["rpm", "rpm-rejected", "unsegmented", "unsegmented-aborts"])
def test_reads_every_point_whatever_the_device_supports(tmp_path: Path, dev: dict,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    lie = dev.pop("lie", False)
    n = 120 if lie else 30
    site = bacnet_site(tmp_path, n=n, **dev)
    if dev.get("rpm") is False or lie:
        # The site claims RPM / segmentation work, the device rejects RPM (Reject) or aborts a reply too big for
        # one APDU (Abort segmentation-not-supported): the driver must find out and fall back to ReadProperty.
        device_side = site
        site = write_site(tmp_path / "s2", [building_doc("b1", [
            {**d.model_dump(exclude_none=True, mode="json"), "rpm": True, "segmentation": True, "max_points": 200,
             "max_apdu": 1476}
            for d in site.files[0].devices],
            [p.model_dump(exclude_none=True, exclude_defaults=True, mode="json") for _, p in site.files[0].points()])])
        values = _values(n)
        with caplog.at_level(logging.WARNING, logger="collectors"):
            collector, sink = run(site, values, 1.2, sim_site=device_side)
        words = "using RPMs of at most" if lie else "switching this device to ReadProperty"
        assert any(words in r.getMessage() for r in caplog.records)
    else:
        values = _values(n)
        collector, sink = run(site, values, 1.2)
    last = {r.point: r for r in sink.readings}
    for i in range(n):
        r = last[f"b1/ai{i}"]
        if i == 3:
            assert r.quality is Quality.OUT_OF_RANGE and r.value == 400.0
        else:
            assert r.quality is Quality.GOOD and math.isclose(r.value, 20.0 + i / 4, abs_tol=1e-4)  # type: ignore[arg-type]
    assert last["b1/bv"].value == 1.0 and last["b1/bv"].quality is Quality.GOOD
    assert collector.pollers["b1/ctl"].status.health is Health.OK


def test_per_property_error_is_a_bad_reading_not_a_failed_poll(tmp_path: Path) -> None:
    site = bacnet_site(tmp_path, n=4)
    extra = point("ghost", {"device": "ctl", "object_type": "analog-input", "instance": 999}, "bacnet")
    doc = building_doc("b1", [d.model_dump(exclude_none=True, mode="json") for d in site.files[0].devices],
                       [p.model_dump(exclude_none=True, exclude_defaults=True, mode="json")
                        for _, p in site.files[0].points()] + [extra])
    device_side = site  # the device has no analog-input 999: it answers an error for that property only
    site = write_site(tmp_path / "s2", [doc])
    collector, sink = run(site, _values(4), 1.2, sim_site=device_side)
    last = {r.point: r for r in sink.readings}
    assert last["b1/ghost"].quality is Quality.BAD and last["b1/ghost"].value is None
    assert last["b1/ai1"].quality is Quality.GOOD
    assert collector.pollers["b1/ctl"].status.errors == 0


@pytest.mark.parametrize("mode, words", [(DeviceMode.ERRORS, "BACnet Error"), (DeviceMode.OFFLINE, "no answer"),
                                         (DeviceMode.GARBAGE, "")])
def test_error_silence_and_garbage_are_logged_and_survived(tmp_path: Path, mode: DeviceMode, words: str) -> None:
    site = bacnet_site(tmp_path, n=4, interval=0.3)
    values = _values(4)
    values.modes["b1/ctl"] = mode

    def recover() -> None:
        values.modes["b1/ctl"] = DeviceMode.OK

    collector, sink = run(site, values, 1.1, between=recover)
    st = collector.pollers["b1/ctl"].status
    assert st.errors >= 1 and "b1/ctl" in (st.last_error or "") and words in (st.last_error or "")
    assert st.health is Health.OK, st.last_error  # recovered
    assert collector.pollers["b1/ctl2"].status.errors == 0
    assert any(r.point == "b1/ai1" and r.quality is not Quality.GOOD for r in sink.readings)


def test_cov_updates_arrive_between_polls(tmp_path: Path) -> None:
    port = free_udp_port()
    devices = [{"id": "ctl", "protocol": "bacnet", "port": port, "device_instance": 1301, "poll_interval_s": 60}]
    pts = [point("sat", {"device": "ctl", "object_type": "analog-value", "instance": 1, "cov": True}, "bacnet")]
    site = write_site(tmp_path / "s", [building_doc("b1", devices, pts)])
    values = DictValues({"b1/sat": 12.0})

    def change() -> None:
        values.values["b1/sat"] = 17.5

    _, sink = run(site, values, 1.5, between=change)
    seen = [r.value for r in sink.readings if r.point == "b1/sat" and r.value is not None]
    assert 17.5 in seen, seen  # the poll interval is 60 s: only COV can have delivered it


def test_cov_subscription_is_renewed_before_its_lifetime_ends(tmp_path: Path) -> None:
    from collectors.drivers.bacnet import BacnetClient, BacnetDriver
    from collectors.planner import BacnetPlanned

    port = free_udp_port()
    devices = [{"id": "ctl", "protocol": "bacnet", "port": port, "device_instance": 1401}]
    pts = [point("sat", {"device": "ctl", "object_type": "analog-value", "instance": 1, "cov": True}, "bacnet")]
    site = write_site(tmp_path / "s", [building_doc("b1", devices, pts)])
    values = DictValues({"b1/sat": 10.0})
    got: list[tuple[float, float | str | None]] = []

    async def main() -> None:
        servers = await start_bacnet(site, values, refresh_s=0.05)
        client = BacnetClient()
        drv = BacnetDriver("b1/ctl", site.devices["b1/ctl"][1], client)
        await drv.open()
        drv.subscribe_cov([BacnetPlanned("b1/sat", "analog-value", 1, "present-value", None)],
                          lambda batch: got.extend((r.ts, r.value) for r in batch), lifetime_s=2)
        try:
            await asyncio.sleep(1.0)
            values.values["b1/sat"] = 11.0
            await asyncio.sleep(4.2)  # two lifetimes: without renewal the device would have dropped us
            values.values["b1/sat"] = 12.0
            await asyncio.sleep(1.0)
        finally:
            await drv.close()
            client.close()
            for s in servers:
                await s.stop()

    asyncio.run(main())
    seen = [v for _, v in got]
    assert 11.0 in seen and 12.0 in seen, seen


def test_cached_getattr_static_answers_as_inspect_does() -> None:
    asyncio.run(_check_cached_getattr_static())  # bacpypes3's local objects need a running loop


async def _check_cached_getattr_static() -> None:
    """buildings/bacpypes_speedup.py: the cached lookup gives inspect.getattr_static's answer for bacpypes3's own
    sequences and local objects (properties, instance values, class values, missing with and without default),
    also after the cache is warm and after an instance value changes."""
    import inspect

    from bacpypes3.apdu import ReadPropertyRequest
    from bacpypes3.basetypes import ReadAccessResultElement
    from bacpypes3.local.analog import AnalogInputObject
    from bacpypes3.local.device import DeviceObject

    from buildings.bacpypes_speedup import CachedGetattrStatic

    class WithProperty:
        kind = "class value"

        @property
        def present(self) -> int:
            return 1

    cached = CachedGetattrStatic()
    shadow = WithProperty()
    shadow.__dict__["present"] = "instance value under a property"  # the property (data descriptor) still wins
    shadow.kind = "instance value"
    objects = [ReadPropertyRequest(objectIdentifier="analog-input,1", propertyIdentifier="present-value"),
               ReadAccessResultElement(propertyIdentifier="present-value"),
               AnalogInputObject(objectIdentifier=("analog-input", 1), objectName="x", presentValue=21.5),
               DeviceObject(objectIdentifier=("device", 9), objectName="d"),
               WithProperty(), shadow, ReadPropertyRequest, WithProperty]
    names = ["objectIdentifier", "propertyArrayIndex", "presentValue", "statusFlags", "objectName", "present",
             "kind", "no_such_attribute", "__init__", "_elements", "encode"]
    missing = object()
    for _warm in range(2):
        for obj in objects:
            for name in names:
                assert cached(obj, name, missing) is inspect.getattr_static(obj, name, missing), (obj, name)
                try:
                    want = inspect.getattr_static(obj, name)
                except AttributeError:
                    with pytest.raises(AttributeError):
                        cached(obj, name)
                else:
                    assert cached(obj, name) is want
    shadow.kind = "changed"
    assert cached(shadow, "kind") == "changed"
