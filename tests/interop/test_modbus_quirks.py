"""Meters that refuse a coalesced read, played by the libmodbus server (tests/interop/libmodbus_server.c): an
unmapped register inside a gap the planner bridged (exception 2), more registers than the meter serves in
one read (exception 3), or both. The collector re-splits the read once, remembers it, and from then on sends
only requests that work; the change is logged once, kept in the status file (a restart starts with it) and
shown by `collect --plan`."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collectors.pipeline import read_status
from collectors.poller import Health
from retrofit.cli import app
from telemetry.reading import Quality, Reading
from tests.collectors.conftest import building_doc, point, write_site
from tests.interop.conftest import OutsideServer, start_libmodbus
from tests.interop.test_modbus_interop import collect_until

QUIRKS = {"gap-unmapped": ["hole 21"], "too-many-registers": ["max 16 3"], "both": ["hole 21", "max 16 2"]}


def meter(n: int = 20) -> tuple[list[dict[str, object]], dict[str, dict[int, int]], dict[str, float]]:
    """Float32 points at 0-19 and 22-41: the planner bridges 20-21 into one read of 42 registers."""
    pts, image, want = [], {"h": {}}, {}
    for i in range(n):
        address = 2 * i + (2 if i >= n // 2 else 0)
        value = 100.0 + i * 1.5
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        image["h"].update({address: hi, address + 1: lo})
        pts.append(point(f"kw{i}", {"device": "m1", "address": address, "type": "float32"}, "modbus", brick="Point",
                         unit="kW"))
        want[f"b1/kw{i}"] = value
    return pts, image, want


@pytest.mark.parametrize("quirk", list(QUIRKS))
def test_a_refused_coalesced_read_is_resplit_once_and_remembered(tmp_path: Path, libmodbus_binary: Path,
                                                                 quirk: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    pts, image, want = meter()
    server: OutsideServer = start_libmodbus(libmodbus_binary, image, QUIRKS[quirk], tmp_path)
    try:
        site = write_site(tmp_path / "s", [building_doc("b1", [{"id": "m1", "protocol": "modbus",
                                                                 "port": server.port, "unit_id": 1,
                                                                 "poll_interval_s": 0.15, "timeout_s": 1.0}], pts)])
        polls_after: list[int] = []

        def done(last: dict[str, Reading]) -> bool:
            if not polls_after and all(k in last and last[k].quality is Quality.GOOD for k in want):
                polls_after.append(len(server.requests))
            return bool(polls_after) and len(server.requests) >= polls_after[0] + 24

        with caplog.at_level(logging.WARNING, logger="collectors"):
            collector, sink = collect_until(site, done, data_dir=tmp_path / "data")
        # a restart with the same data dir starts with the reads the device answered: not one refusal
        first_run = len(server.requests)
        restarted, _ = collect_until(site, lambda last: len(server.requests) >= first_run + 12,
                                     data_dir=tmp_path / "data")
        second_run = server.requests[first_run:]
    finally:
        server.stop()
    assert second_run and not [line for line in second_run if " exc " in line], second_run[:8]
    assert restarted.pollers["b1/m1"].status.plan_changes == collector.pollers["b1/m1"].status.plan_changes
    last = {r.point: r for r in sink.readings}
    assert all(last[k].value == pytest.approx(v) and last[k].quality is Quality.GOOD for k, v in want.items())
    st = collector.pollers["b1/m1"].status
    assert st.health is Health.OK, st.last_error
    # learning happened in the first poll; afterwards only requests that work, the same set every poll
    refused = [i for i, line in enumerate(server.requests) if " exc " in line]
    assert refused and server.requests[0].startswith("3 0 42 exc")
    learned = collector.pollers["b1/m1"].driver.learned  # type: ignore[attr-defined]
    (subs,) = learned.values()
    assert all(s.count <= (16 if "max" in " ".join(QUIRKS[quirk]) else 125) for s in subs)
    after = server.requests[refused[-1] + 1:]
    assert len(after) >= 24 and all(line.endswith(" ok") for line in after)
    assert {line.rsplit(" ", 1)[0] for line in after} == {f"3 {s.start} {s.count}" for s in subs}
    assert len(refused) <= 2 * len(subs), server.requests[:20]  # bisection, not a register-by-register scan
    # logged once, with what to change in the site file
    lines = [r.getMessage() for r in caplog.records if "re-planned" in r.getMessage()]
    assert len(lines) == 1 and "max_registers / max_gap" in lines[0], lines
    # kept in the status file, and shown by `retrofit collect --plan`
    status = read_status(tmp_path / "data")
    assert status is not None
    changes = status["devices"]["b1/m1"]["plan_changes"]
    assert [c["read"] for c in changes] == ["unit 1 holding 0-41 (42) -> 20 points"]
    out = CliRunner().invoke(app, ["collect", "--site", str(tmp_path / "s"), "--plan", "--data-dir",
                                   str(tmp_path / "data")])
    assert out.exit_code == 0, out.output
    assert "refused by the device (exception" in out.output
    for s in subs:
        assert s.describe() in out.output


def test_a_register_refused_even_alone_is_flagged_not_retried_in_bulk(tmp_path: Path, libmodbus_binary: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A site-file point on an address the meter does not serve: its neighbours read, it reads BAD every poll,
    the log names it once."""
    pts, image, want = meter(10)
    pts.append(point("ghost", {"device": "m1", "address": 11, "type": "uint16"}, "modbus", brick="Point", unit=""))
    server = start_libmodbus(libmodbus_binary, image, ["hole 11"], tmp_path)
    try:
        site = write_site(tmp_path / "s", [building_doc("b1", [{"id": "m1", "protocol": "modbus",
                                                                 "port": server.port, "unit_id": 1,
                                                                 "poll_interval_s": 0.15}], pts)])
        seen: list[int] = []

        def done(last: dict[str, Reading]) -> bool:
            if all(k in last and last[k].quality is Quality.GOOD for k in want) and "b1/ghost" in last:
                seen.append(1)
            return len(seen) >= 8

        with caplog.at_level(logging.WARNING, logger="collectors"):
            collector, sink = collect_until(site, done)
    finally:
        server.stop()
    last = {r.point: r for r in sink.readings}
    assert last["b1/ghost"].quality is Quality.BAD and last["b1/ghost"].value is None
    assert all(last[k].quality is Quality.GOOD for k in want)
    lines = [r.getMessage() for r in caplog.records if "b1/ghost" in r.getMessage()]
    assert len(lines) == 1 and "check its address" in lines[0], lines
    # each later poll: the good block(s) and one single read of the ghost, never the refused 0-21 again
    tail = server.requests[-6:]
    assert any(line.startswith("3 11 1 exc 2") for line in tail) and not any(line.startswith("3 0 22") for line in tail)
    assert collector.pollers["b1/m1"].status.health is Health.DEGRADED
