"""The pipeline: batches of Readings fan out from the poll loops to sinks.

Every sink gets its own bounded queue and worker, so a slow MQTT publisher does not hold up the store. When a
queue is full, ``put`` waits (back-pressure on the poll loops) rather than dropping: the store sink is a durable
on-disk buffer and drains fast, so in practice only a stuck sink ever pushes back. A sink that raises is retried
with backoff (sinks that must never lose data) or, for best-effort sinks, counted and logged as ``failed`` with
the number of readings: never a silent drop.

Sinks:
- ``StoreSink``: the telemetry store through its durable buffer (``telemetry.buffer``) when available.
- ``CallbackSink``: the rules engine's hook (any callable taking a list of Readings); also device-status events.
- ``collectors.mqtt_publish.MqttPublisher``: readings to MQTT, QoS 1.

Counters (per device from the poll loops, per sink here, MQTT sensor counters) are written as one JSON status
file into the data dir every few seconds (atomic rename), for the dashboard, and summarised in the logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from telemetry.reading import Reading

log = logging.getLogger("collectors.pipeline")

STATUS_FILE = "collector-status.json"


class Sink(Protocol):
    """Something that takes batches of readings. ``write`` may block (it runs in a worker thread)."""

    name: str
    must_deliver: bool  # True: retry forever (with backoff); False: count and log failures

    def write(self, batch: Sequence[Reading]) -> None: ...

    def close(self) -> None: ...


@dataclass
class SinkStats:
    batches: int = 0
    readings: int = 0
    errors: int = 0
    failed_readings: int = 0
    last_error: str | None = None
    queued: int = 0
    max_write_s: float = 0.0


class CallbackSink:
    """Hands each batch to a callable: the hook where the rules engine plugs in (collectors never import rules)."""

    must_deliver = False

    def __init__(self, fn: Callable[[Sequence[Reading]], Any], name: str = "rules") -> None:
        self.fn = fn
        self.name = name

    def write(self, batch: Sequence[Reading]) -> None:
        self.fn(batch)

    def close(self) -> None:
        close = getattr(self.fn, "close", None)
        if callable(close):
            close()


class StoreSink:
    """The telemetry store, through the durable buffer when one is given (append = on disk before ack)."""

    must_deliver = True
    name = "store"

    def __init__(self, target: Any) -> None:
        # ``target`` is a telemetry buffer (has ``append``) or, for tools and tests, a Store (has ``write``).
        self.target = target
        self._append = getattr(target, "append", None) or target.write

    def write(self, batch: Sequence[Reading]) -> None:
        self._append(list(batch))

    def close(self) -> None:
        self.target.close()


class MemorySink:
    """Keeps every reading in a list (for commissioning tools, benches and tests)."""

    must_deliver = True

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.readings: list[Reading] = []

    def write(self, batch: Sequence[Reading]) -> None:
        self.readings.extend(batch)

    def close(self) -> None:
        pass


@dataclass
class _Lane:
    sink: Sink
    queue: asyncio.Queue[list[Reading] | None]
    stats: SinkStats = field(default_factory=SinkStats)
    task: asyncio.Task[None] | None = None


class Pipeline:
    """Fan-out of reading batches to sinks, with back-pressure, retries and counters."""

    def __init__(self, sinks: Sequence[Sink], max_batches: int = 1000, retry_max_s: float = 30.0) -> None:
        self.lanes = [_Lane(s, asyncio.Queue(maxsize=max_batches)) for s in sinks]
        self.retry_max_s = retry_max_s
        self.readings_in = 0
        self.batches_in = 0
        self._started = False

    def start(self) -> None:
        for lane in self.lanes:
            lane.task = asyncio.create_task(self._drain(lane), name=f"sink-{lane.sink.name}")
        self._started = True

    async def put(self, readings: list[Reading]) -> None:
        """Hand a batch to every sink; waits while any sink's queue is full (back-pressure, not loss)."""
        if not readings:
            return
        self.readings_in += len(readings)
        self.batches_in += 1
        for lane in self.lanes:
            await lane.queue.put(readings)
            lane.stats.queued = lane.queue.qsize()

    async def _drain(self, lane: _Lane) -> None:
        st = lane.stats
        while True:
            batch = await lane.queue.get()
            if batch is None:
                lane.queue.task_done()
                return
            # Merge what is already waiting into one write: fewer, larger batches under load.
            while not lane.queue.empty() and len(batch) < 5000:
                nxt = lane.queue.get_nowait()
                lane.queue.task_done()
                if nxt is None:
                    await lane.queue.put(None)  # keep the stop marker for the next round
                    break
                batch = batch + nxt
            await self._deliver(lane, batch)
            st.queued = lane.queue.qsize()
            lane.queue.task_done()

    async def _deliver(self, lane: _Lane, batch: list[Reading]) -> None:
        st = lane.stats
        delay = 0.1
        attempts = 0
        while True:
            t0 = time.perf_counter()
            try:
                await asyncio.to_thread(lane.sink.write, batch)
            except Exception as exc:  # noqa: BLE001 - a sink's failure must not kill the pipeline
                attempts += 1
                st.errors += 1
                st.last_error = f"{type(exc).__name__}: {exc}"
                if lane.sink.must_deliver or attempts < 3:
                    log.warning("sink %s failed (%s); retrying %d readings in %.1f s", lane.sink.name,
                                st.last_error, len(batch), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                st.failed_readings += len(batch)
                log.error("sink %s failed 3 times (%s): %d readings not delivered to it (%d so far)",
                          lane.sink.name, st.last_error, len(batch), st.failed_readings)
                return
            st.max_write_s = max(st.max_write_s, time.perf_counter() - t0)
            st.batches += 1
            st.readings += len(batch)
            return

    async def close(self) -> None:
        """Deliver everything queued, then close every sink."""
        if self._started:
            for lane in self.lanes:
                await lane.queue.put(None)
            await asyncio.gather(*(lane.task for lane in self.lanes if lane.task is not None))
        for lane in self.lanes:
            try:
                await asyncio.to_thread(lane.sink.close)
            except Exception as exc:  # noqa: BLE001 - report and go on closing the others
                log.error("closing sink %s: %s", lane.sink.name, exc)

    def stats(self) -> dict[str, Any]:
        return {
            "readings_in": self.readings_in,
            "batches_in": self.batches_in,
            "sinks": {lane.sink.name: {**lane.stats.__dict__, "queued": lane.queue.qsize()} for lane in self.lanes},
        }


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write the status JSON atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(status, default=str, indent=1))
    os.replace(tmp, path)


def learned_plan_changes(data_dir: Path | None) -> dict[str, list[dict[str, Any]]]:
    """Per device, the reads the last collector of ``data_dir`` re-split because the device refused them (from
    its status file; empty without one): the next run starts with them, `collect --plan` shows them."""
    status = read_status(data_dir) if data_dir is not None else None
    devices = status.get("devices") if isinstance(status, dict) else None
    if not isinstance(devices, dict):  # no status yet, or a file that is not ours: start from the site file
        return {}
    return {key: [c for c in dev["plan_changes"] if isinstance(c, dict)] for key, dev in devices.items()
            if isinstance(dev, dict) and isinstance(dev.get("plan_changes"), list)}


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The last status a collector wrote into ``data_dir`` (for the dashboard), or None."""
    try:
        return json.loads((Path(data_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
