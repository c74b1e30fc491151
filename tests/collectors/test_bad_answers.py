"""Bad answers from a Modbus TCP device, served by a raw-socket test server (real sockets, frames built here):
a wrong transaction id, a short frame, a wrong function code, exception 6 (busy), nothing at all; then a fuzz
run of 10,000 garbage frames from a seeded generator. Each gets a clear error naming the device, a bounded
retry, and never a crash or a stuck poll loop; the device reads normally again once it answers properly."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.drivers.modbus import ModbusDriver
from collectors.planner import DevicePlan, plan_site
from collectors.poller import DevicePoller, Health, QuietLog
from telemetry.reading import Quality, Reading
from tests.collectors.conftest import building_doc, point, write_site

CLOSE = b"<close>"  # at the end of an answer: write what comes before, then drop the connection
Answer = Callable[[bytes], bytes | None]


def good_answer(req: bytes, value: int = 0x4242) -> bytes:
    """A correct answer to a read of registers: same transaction id, unit and function, ``count`` registers."""
    tid, unit, fc = req[0:2], req[6], req[7]
    count = int.from_bytes(req[10:12], "big")
    pdu = bytes([fc, 2 * count]) + struct.pack(f">{count}H", *([value] * count))
    return tid + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu


def frame(req: bytes, pdu: bytes, tid: bytes | None = None, length: int | None = None) -> bytes:
    return (tid or req[0:2]) + b"\x00\x00" + (length if length is not None else len(pdu) + 1).to_bytes(2, "big") \
        + bytes([req[6]]) + pdu


class RawServer:
    """Answers each Modbus TCP request with whatever ``answer(request)`` returns (None: nothing)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(7)
                req = head + await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
                self.requests += 1
                out = self.answer(req)
                close = out is not None and out.endswith(CLOSE)
                if close:
                    out = out[:-len(CLOSE)]  # type: ignore[index]
                if out:
                    writer.write(out)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def one_device(tmp_path: Path, port: int, timeout_s: float = 0.3, points: int = 4) -> DevicePlan:
    site = write_site(tmp_path / f"s{port}", [building_doc("b1", [{"id": "m1", "protocol": "modbus", "port": port,
                                                                    "unit_id": 1, "timeout_s": timeout_s}],
                                                           [point(f"t{i}", {"device": "m1", "address": i,
                                                                            "type": "uint16"}, "modbus")
                                                            for i in range(points)])])
    return plan_site(site)["b1/m1"]


async def poll_n(plan: DevicePlan, n: int) -> tuple[DevicePoller, list[Reading], list[float]]:
    """``n`` polls of the device's one group through a real poller, and how long each took."""
    readings: list[Reading] = []

    async def emit(batch: list[Reading]) -> None:
        readings.extend(batch)

    poller = DevicePoller(plan, ModbusDriver(plan.device_key, plan.device), emit,
                          quiet=QuietLog(plan.device_key, clock=lambda: 0.0))
    took = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await poller.poll_group(plan.groups[0])
            took.append(time.perf_counter() - t0)
    finally:
        await poller.driver.close()
    return poller, readings, took


CASES: dict[str, tuple[Answer, str]] = {
    "wrong-transaction-id": (lambda req: frame(req, good_answer(req)[7:], tid=b"\x7f\x7f"), "transaction id"),
    "short-frame": (lambda req: frame(req, bytes([req[7], 2]) + b"\x00\x01"), "registers"),
    "truncated-frame": (lambda req: good_answer(req)[:-3], "malformed answer"),
    "wrong-function-code": (lambda req: frame(req, bytes([4]) + good_answer(req)[8:]), "function code"),
    "busy": (lambda req: frame(req, bytes([req[7] | 0x80, 6])), "exception 6 (server device busy)"),
    "nothing": (lambda req: None, "no answer within"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_answer_is_a_clear_bounded_device_error(tmp_path: Path, case: str) -> None:
    answer, words = CASES[case]
    bad = [True]

    def serve(req: bytes) -> bytes | None:
        return answer(req) if bad[0] else good_answer(req)

    async def main() -> tuple[DevicePoller, list[Reading], list[float], int, list[Reading]]:
        server = await RawServer(serve).start()
        try:
            plan = one_device(tmp_path, server.port)
            poller, readings, took = await poll_n(plan, 3)
            requests = server.requests
            bad[0] = False
            _, after, _ = await poll_n(plan, 1)
            return poller, readings, took, requests, after
        finally:
            await server.stop()

    poller, readings, took, requests, after = asyncio.run(main())
    st = poller.status
    assert st.last_error and "b1/m1" in st.last_error and words in st.last_error, st.last_error
    assert st.health in (Health.DEGRADED, Health.OFFLINE)
    assert readings and all(r.quality in (Quality.BAD, Quality.COMM_FAILURE) and r.value is None for r in readings)
    assert max(took) < 0.3 * 3 + 1.0, took  # bounded: at most a few timeouts, never stuck
    assert requests <= 3 * 3, requests  # bounded retry: busy is asked again twice per poll, the rest not at all
    assert all(r.quality is Quality.GOOD and r.value == 0x4242 for r in after), after


def test_busy_then_answered_is_read_within_the_poll(tmp_path: Path) -> None:
    calls = [0]

    def serve(req: bytes) -> bytes:
        calls[0] += 1
        return frame(req, bytes([req[7] | 0x80, 6])) if calls[0] <= 2 else good_answer(req)

    async def main() -> tuple[DevicePoller, list[Reading], list[float]]:
        server = await RawServer(serve).start()
        try:
            return await poll_n(one_device(tmp_path, server.port), 1)
        finally:
            await server.stop()

    poller, readings, _ = asyncio.run(main())
    assert calls[0] == 3 and poller.status.errors == 0
    assert all(r.quality is Quality.GOOD for r in readings)


def garbage(rng: random.Random, req: bytes) -> bytes | None:
    """One garbage answer: random bytes, or a frame with one field wrong, or nothing, or a dropped connection."""
    kind = rng.random()
    pdu_ok = good_answer(req, rng.randrange(65536))[7:]
    if kind < 0.25:
        return rng.randbytes(rng.randrange(1, 40))
    if kind < 0.40:
        return frame(req, pdu_ok, tid=rng.randbytes(2))
    if kind < 0.55:
        return frame(req, pdu_ok, length=rng.randrange(0, 300))
    if kind < 0.65:
        return frame(req, bytes([rng.randrange(256)]) + pdu_ok[1:])
    if kind < 0.75:
        return frame(req, bytes([req[7] | 0x80, rng.randrange(256)]))
    if kind < 0.85:
        return frame(req, pdu_ok[:1] + bytes([rng.randrange(256)]) + pdu_ok[2:rng.randrange(2, len(pdu_ok) + 1)])
    if kind < 0.93:
        return good_answer(req)[: rng.randrange(1, 12)] + CLOSE  # cut off mid-frame, then the line drops
    if kind < 0.99:
        return frame(req, pdu_ok) + rng.randbytes(rng.randrange(1, 20))  # a good frame with trailing junk
    return None  # silence: the one case that costs a timeout


FUZZ_FRAMES = 10_000
FUZZ_DEVICES = 4  # in parallel, each with its own seeded generator: the timeouts of cut frames overlap


def test_fuzz_ten_thousand_garbage_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    per_device = FUZZ_FRAMES // FUZZ_DEVICES

    def server_for(seed: int) -> tuple[RawServer, list[int]]:
        rng, sent = random.Random(seed), [0]

        def serve(req: bytes) -> bytes | None:
            if sent[0] >= per_device:
                return good_answer(req)
            sent[0] += 1
            return garbage(rng, req)

        return RawServer(serve), sent

    async def fuzz_one(seed: int) -> tuple[DevicePoller, list[Reading], int]:
        server, sent = server_for(seed)
        await server.start()
        try:
            plan = one_device(tmp_path, server.port, timeout_s=0.01, points=2)
            readings: list[Reading] = []

            async def emit(batch: list[Reading]) -> None:
                readings.extend(batch)

            poller = DevicePoller(plan, ModbusDriver(plan.device_key, plan.device), emit,
                                  quiet=QuietLog(plan.device_key, clock=lambda: 0.0))
            while sent[0] < per_device:
                await asyncio.wait_for(poller.poll_group(plan.groups[0]), 5)  # a stuck poll fails here
            last: list[Reading] = []
            for _ in range(20):  # the device answers properly again (a 10 ms timeout may miss one under load)
                ok_before = len(readings)
                await poller.poll_group(plan.groups[0])
                last = readings[ok_before:]
                if all(r.quality is Quality.GOOD for r in last):
                    break
            await poller.driver.close()
            return poller, last, sent[0]
        finally:
            await server.stop()

    async def main() -> list[tuple[DevicePoller, list[Reading], int]]:
        return await asyncio.gather(*(fuzz_one(20261204 + i) for i in range(FUZZ_DEVICES)))

    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="collectors"):
        results = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    ours = [r for r in caplog.records if r.name.startswith("collectors")]
    assert not [r for r in ours if "unexpected" in r.getMessage()], "a garbage frame escaped the driver"
    assert sum(sent for _, _, sent in results) == FUZZ_FRAMES
    for poller, last, _ in results:
        st = poller.status
        assert st.polls >= per_device // 3 and st.errors > per_device // 3, st
        assert st.last_error is not None and poller.plan.device_key in st.last_error
        assert all(r.quality is Quality.GOOD and r.value == 0x4242 for r in last), last
    assert len(ours) < 100 * FUZZ_DEVICES, len(ours)  # the log stays quiet: each new kind of error once
    assert elapsed < 120, elapsed
