"""Feeding the engine: replaying stored history, and evaluating readings that arrive over MQTT.

Both paths end in the same ``Engine.feed`` on event time, so a replay of what was collected gives the same
alarms as the live run did (see rules/engine.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rules.engine import AlarmEvent, Engine
from telemetry.reading import Reading
from telemetry.store import Store

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger("rules.runner")


def history(store: Store, points: Sequence[str], start: float, end: float,
            chunk_s: float = 86400.0) -> Iterator[list[Reading]]:
    """Stored readings of the points in [start, end), one time-sorted batch per chunk (a day by default)."""
    t = start
    while t < end:
        t2 = min(end, t + chunk_s)
        batch: list[Reading] = []
        for p in points:
            batch.extend(store.raw(p, t, t2))
        batch.sort(key=lambda r: r.ts)
        yield batch
        t = t2


def sample_interval(store: Store, points: Sequence[str], start: float, end: float, probe: int = 20) -> float | None:
    """The typical spacing of stored readings (median over a few points' first day), or None without data."""
    import statistics

    gaps: list[float] = []
    for p in points[:probe]:
        rs = store.raw(p, start, min(end, start + 86400.0), limit=200)
        gaps += [b.ts - a.ts for a, b in zip(rs, rs[1:], strict=False) if b.ts > a.ts]
    return statistics.median(gaps) if gaps else None


@dataclass
class ReplayResult:
    events: list[AlarmEvent] = field(default_factory=list)
    readings: int = 0
    seconds: float = 0.0


def replay(engine: Engine, batches: Iterable[Sequence[Reading]], end: float | None = None,
           on_events: Callable[[list[AlarmEvent]], None] | None = None) -> ReplayResult:
    """Feed batches through the engine, flush at the end and (optionally) evaluate on up to ``end``."""
    res = ReplayResult()
    t0 = time.perf_counter()
    for b in batches:
        res.readings += len(b)
        ev = engine.feed(b)
        if ev:
            res.events.extend(ev)
            if on_events:
                on_events(ev)
    ev = engine.flush()
    if end is not None and engine.stats.ticks:
        ev += engine.advance_to(end)
    if ev:
        res.events.extend(ev)
        if on_events:
            on_events(ev)
    res.seconds = time.perf_counter() - t0
    return res


class MqttReadings:
    """Subscribe to readings published by edge collectors for a set of buildings; hand them over in batches.

    Topic ``<root>/readings/<building>/#`` per building (the collectors' format, decoded by ``decode``); a
    payload that does not decode is counted and logged with its topic, never fed to the engine.

    With a ``client_id`` the session is persistent (clean_session false, QoS 1 subscriptions): while the worker is
    stopped or restarting the broker keeps the QoS 1 readings published for its buildings and delivers them when
    it is back, so a leak reported during a restart still raises its alarm. Without one the session is clean.
    """

    def __init__(self, url: str, buildings: Sequence[str], decode: Callable[[bytes], Reading], root: str = "retrofit",
                 username: str | None = None, password: str | None = None, client_id: str = "") -> None:
        from urllib.parse import urlsplit

        import paho.mqtt.client as mqtt

        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.topics = [f"{root.strip('/')}/readings/{b}/#" for b in buildings]
        self.buildings = set(buildings)
        self.decode = decode
        self.q: queue.Queue[Reading] = queue.Queue()
        self.bad = 0
        self.foreign = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=not client_id, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.5, 10)
        if username or parts.username:
            self.client.username_pw_set(username or parts.username, password or parts.password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: mqtt.Properties | None) -> None:
        if reason_code.is_failure:
            log.error("rules: broker %s:%d refused the connection: %s", self.host, self.port, reason_code)
            return
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            r = self.decode(msg.payload)
        except ValueError as exc:
            self.bad += 1
            log.warning("rules: ignored a malformed reading on %s: %s", msg.topic, exc)
            return
        if r.building not in self.buildings:
            self.foreign += 1
            return
        self.q.put(r)

    def batch(self, max_wait_s: float = 1.0, max_size: int = 50_000) -> list[Reading]:
        """Readings received so far (waits up to max_wait_s for the first one)."""
        out: list[Reading] = []
        try:
            out.append(self.q.get(timeout=max_wait_s))
        except queue.Empty:
            return out
        while len(out) < max_size:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                break
        return out

    def drain(self) -> list[Reading]:
        """Everything received and not yet handed over (after ``close``, the rest of the session's readings)."""
        out: list[Reading] = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
