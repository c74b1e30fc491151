"""Our BACnet collector (bacpypes3) and discovery against a device on a second stack, @bacnet-js/client under
Node.js (tests/interop/bacnet_js/device.js), answering the way real controllers do: RPM rejected (Reject or
Error), no segmentation, small max-APDU (50, 128, 206, 480), objects missing from the object-list, properties
that answer errors inline, and an object-list that changes after commissioning."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from buildings.site import Site
from collectors.discover import discover_bacnet
from collectors.poller import Health
from telemetry.reading import Quality, Reading
from tests.collectors.conftest import building_doc, point, write_site
from tests.interop.conftest import JsDevice
from tests.interop.test_modbus_interop import collect_until

N_AI = 24


def objects(n: int = N_AI) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [{"type": "analog-input", "instance": i, "name": f"ai-{i}", "value": 18.0 + i * 0.25,
                                   "units": 62} for i in range(1, n + 1)]
    objs += [{"type": "binary-input", "instance": 1, "name": "fan-status", "value": 1},
             {"type": "multi-state-value", "instance": 2, "name": "mode", "value": 3}]
    return objs


def expected(objs: list[dict[str, Any]]) -> dict[str, float]:
    return {f"b1/{o['type']}-{o['instance']}": float(o["value"]) for o in objs}


def site_for(tmp_path: Path, dev: JsDevice, objs: list[dict[str, Any]], **device: Any) -> Site:
    d = {"id": "ctl", "protocol": "bacnet", "port": dev.port, "device_instance": dev.instance,
         "poll_interval_s": 0.3, "timeout_s": 1.0, **device}
    pts = [point(f"{o['type']}-{o['instance']}", {"device": "ctl", "object_type": o["type"],
                                                   "instance": o["instance"]}, "bacnet", brick="Point", unit="")
           for o in objs]
    return write_site(tmp_path / f"s{time.monotonic_ns()}", [building_doc("b1", [d], pts)])


def good(keys: list[str] | dict[str, float]) -> Callable[[dict[str, Reading]], bool]:
    return lambda last: all(k in last and last[k].quality is Quality.GOOD for k in keys)


def check(last: dict[str, Reading], want: dict[str, float]) -> None:
    for k, v in want.items():
        assert k in last, k
        assert last[k].quality is Quality.GOOD, (k, last[k])
        assert last[k].value == pytest.approx(v, rel=1e-6), (k, last[k].value, v)  # REAL is float32


def test_reads_a_device_of_another_stack_with_rpm(tmp_path: Path, bacnet_js: Callable[..., JsDevice]) -> None:
    objs = objects()
    dev = bacnet_js({"instance": 3101, "objects": objs})
    want = expected(objs)
    collector, sink = collect_until(site_for(tmp_path, dev, objs), good(want))
    check({r.point: r for r in sink.readings}, want)
    assert dev.requests("rpm") >= 1 and dev.requests("rp") == 0, dev.log[-5:]
    st = collector.pollers["b1/ctl"].status
    assert st.health is Health.OK and st.errors == 0, st.last_error


@pytest.mark.parametrize("refusal", ["reject", "error"])
def test_rpm_refused_switches_to_read_property(tmp_path: Path, bacnet_js: Callable[..., JsDevice], refusal: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Old controllers answer RPM with Reject unrecognized-service, some with Error services/service-request-
    denied; either way the device is read with ReadProperty from then on, with one warning."""
    objs = objects(8)
    dev = bacnet_js({"instance": 3102, "rpm": refusal, "objects": objs})
    want = expected(objs)
    with caplog.at_level(logging.WARNING, logger="collectors"):
        collector, sink = collect_until(site_for(tmp_path, dev, objs), lambda last: good(want)(last) and
                                        dev.requests("rp") >= 3 * len(want))
    check({r.point: r for r in sink.readings}, want)
    assert dev.requests("rpm") == 1, "RPM must be tried once, not every poll"
    switched = [r for r in caplog.records if "switching this device to ReadProperty" in r.getMessage()]
    assert len(switched) == 1
    assert collector.pollers["b1/ctl"].status.health is Health.OK


@pytest.mark.parametrize("max_apdu", [50, 128, 206, 480])
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "site-file-says-1476"])
def test_small_max_apdu_without_segmentation(tmp_path: Path, bacnet_js: Callable[..., JsDevice], max_apdu: int,
                                             declared: bool) -> None:
    """A device that accepts only small APDUs and cannot segment. Declared in the site file (as `retrofit
    discover` writes it), every request fits from the first poll; left at the defaults, the device aborts and
    the driver shrinks its RPMs until they fit, and remembers."""
    objs = objects(40)  # 42 properties: more than one 480-byte answer holds
    dev = bacnet_js({"instance": 3103, "maxApdu": max_apdu, "objects": objs})
    want = expected(objs)
    extra = {"max_apdu": max_apdu, "segmentation": False} if declared else {}
    polls_seen: list[int] = []

    def done(last: dict[str, Reading]) -> bool:
        if not good(want)(last):
            return False
        polls_seen.append(dev.requests("rpm"))
        return len(polls_seen) > 1 and polls_seen[-1] >= polls_seen[0] + 3 * max(1, polls_seen[0])

    collector, sink = collect_until(site_for(tmp_path, dev, objs, **extra), done)
    check({r.point: r for r in sink.readings}, want)
    aborts = [line for line in dev.log if "abort" in line]
    if declared:
        assert aborts == [], aborts[:5]
    else:
        assert aborts, "the defaults should not fit this device"
        first_ok = next(i for i, line in enumerate(dev.log) if line.endswith(" ok"))
        assert all("abort" not in line for line in dev.log[first_ok:]), "the driver forgot what it learned"
    assert collector.pollers["b1/ctl"].status.health is Health.OK


def test_objects_missing_from_the_object_list(tmp_path: Path, bacnet_js: Callable[..., JsDevice]) -> None:
    """Discovery sees only what the object-list says (read element by element: the whole list does not fit the
    device's 128-byte APDU); a point the technician adds by hand for an unlisted object still reads; a point
    for an object the device does not have is flagged bad while the rest read good."""
    objs = objects(30) + [{"type": "analog-value", "instance": 77, "name": "hidden-sp", "value": 22.5,
                           "listed": False}]
    dev = bacnet_js({"instance": 3104, "maxApdu": 128, "objects": objs})
    found = asyncio.run(discover_bacnet([f"127.0.0.1:{dev.port}"], timeout_s=2.0))
    assert len(found) == 1 and found[0].instance == 3104 and found[0].max_apdu == 128
    seen = {(o["object_type"], o["instance"]) for o in found[0].objects}
    assert ("analog-input", 30) in seen and ("analog-value", 77) not in seen
    assert any("[0]" in line for line in dev.log), "object-list should have been read element by element"
    ghost = {"type": "analog-input", "instance": 999, "value": 0.0}
    site = site_for(tmp_path, dev, [*objs, ghost], max_apdu=128, segmentation=False)
    want = expected(objs)
    collector, sink = collect_until(site, lambda last: good(want)(last) and "b1/analog-input-999" in last)
    last = {r.point: r for r in sink.readings}
    check(last, want)
    assert last["b1/analog-input-999"].quality is Quality.BAD and last["b1/analog-input-999"].value is None
    assert collector.pollers["b1/ctl"].status.health is Health.DEGRADED  # answering, one point bad


@pytest.mark.parametrize("rpm", [True, "reject"], ids=["rpm", "read-property"])
def test_properties_that_answer_errors_inline(tmp_path: Path, bacnet_js: Callable[..., JsDevice], rpm: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    objs = objects(6)
    objs[2]["errors"] = {"present-value": ["property", "read-access-denied"]}
    dev = bacnet_js({"instance": 3105, "rpm": rpm, "objects": objs})
    denied = "b1/analog-input-3"
    want = {k: v for k, v in expected(objs).items() if k != denied}
    with caplog.at_level(logging.WARNING, logger="collectors"):
        collector, sink = collect_until(site_for(tmp_path, dev, objs),
                                        lambda last: good(want)(last) and denied in last)
    last = {r.point: r for r in sink.readings}
    check(last, want)
    assert last[denied].quality is Quality.BAD
    assert any("read-access-denied" in r.getMessage() for r in caplog.records)
    assert collector.pollers["b1/ctl"].status.health in (Health.DEGRADED, Health.OK)


def test_a_whole_rpm_failed_for_one_bad_property(tmp_path: Path, bacnet_js: Callable[..., JsDevice],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Some controllers answer the whole RPM with Error unknown-object when one object in it is missing: the
    driver halves the request until the missing one is alone, keeps the halves, and the rest read every poll."""
    objs = objects(15)
    dev = bacnet_js({"instance": 3107, "rpmErrors": "whole", "objects": objs})
    ghost = {"type": "analog-input", "instance": 999, "value": 0.0}
    want = expected(objs)
    rounds: list[int] = []

    def done(last: dict[str, Reading]) -> bool:
        if good(want)(last) and "b1/analog-input-999" in last:
            rounds.append(dev.requests("rpm"))
        return len(rounds) > 1 and rounds[-1] >= rounds[0] + 20

    with caplog.at_level(logging.WARNING, logger="collectors"):
        collector, sink = collect_until(site_for(tmp_path, dev, [*objs, ghost]), done)
    last = {r.point: r for r in sink.readings}
    check(last, want)
    assert last["b1/analog-input-999"].quality is Quality.BAD
    first_ok = next(i for i, line in enumerate(dev.log) if line.endswith(" ok"))
    later = [line for line in dev.log[first_ok:] if line.startswith("rpm")]
    tail = later[-10:]  # two polls after learning: only the missing object's own request fails
    assert [line for line in tail if "error" in line] == ["rpm 1 error-whole"] * 2, tail
    assert sum("splitting it" in r.getMessage() for r in caplog.records) == 1
    assert sum("unknown-object" in r.getMessage() and "analog-input,999" in r.getMessage()
               for r in caplog.records) == 1
    assert collector.pollers["b1/ctl"].status.health is Health.DEGRADED


def test_object_list_changes_after_commissioning(tmp_path: Path, bacnet_js: Callable[..., JsDevice],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The controller is reprogrammed while the collector runs: one object goes, one arrives. The gone point
    reads bad with a message that says to re-run discovery, its neighbours keep reading, and a new discovery
    shows the new object-list."""
    objs = objects(8)
    dev = bacnet_js({"instance": 3106, "objects": objs})
    want = expected(objs)
    gone = "b1/analog-input-2"
    state: dict[str, float] = {}

    def done(last: dict[str, Reading]) -> bool:
        if "changed" not in state and good(want)(last):
            dev.send({"op": "drop", "object": "analog-input,2"})
            dev.send({"op": "add", "object": {"type": "analog-input", "instance": 50, "value": 5.5, "units": 62}})
            state["changed"] = time.time()
        return "changed" in state and gone in last and last[gone].ts > state["changed"] + 0.1 and \
            last[gone].quality is Quality.BAD

    with caplog.at_level(logging.WARNING, logger="collectors"):
        collector, sink = collect_until(site_for(tmp_path, dev, objs), done)
    last = {r.point: r for r in sink.readings}
    assert last[gone].quality is Quality.BAD
    check(last, {k: v for k, v in want.items() if k != gone})
    hint = [r.getMessage() for r in caplog.records if "unknown-object" in r.getMessage()]
    assert hint and "retrofit discover bacnet" in hint[0], hint
    assert collector.pollers["b1/ctl"].status.health is Health.DEGRADED
    found = asyncio.run(discover_bacnet([f"127.0.0.1:{dev.port}"], timeout_s=2.0))
    seen = {(o["object_type"], o["instance"]) for o in found[0].objects}
    assert ("analog-input", 50) in seen and ("analog-input", 2) not in seen
