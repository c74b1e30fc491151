"""Ingest: readings published by edge collectors on MQTT -> the store (through the durable buffer).

For scale-out (one collector per building on edge hardware, a broker, ingest workers). The subscriber keeps a
persistent session (fixed client id, clean_session false, QoS 1), so the broker holds messages while ingest is
down; messages are acknowledged manually, only after the batch they belong to was accepted by the sink (the
durable buffer), so a crash between receipt and storage makes the broker send them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collectors.drivers.mqtt import broker_of
from collectors.mqtt_publish import decode_reading
from telemetry.reading import Reading

log = logging.getLogger("collectors.ingest")


class Ingest:
    """Subscribes to ``{root}/readings/#`` and hands batches to ``write`` before acknowledging them."""

    def __init__(self, url: str, write: Callable[[Sequence[Reading]], None], root: str = "retrofit",
                 client_id: str = "retrofit-ingest", username: str | None = None, password: str | None = None,
                 batch_max: int = 5000, flush_s: float = 0.2, buildings: Sequence[str] | None = None) -> None:
        self.host, self.port = broker_of(url)
        self.write = write
        self.topics = [f"{root}/readings/{b}/#" for b in buildings] if buildings else [f"{root}/readings/#"]
        self.batch_max = batch_max
        self.flush_s = flush_s
        self.received = 0
        self.stored = 0
        self.rejected: Counter[str] = Counter()
        self._pending: list[tuple[int, int, Reading | None]] = []  # (mid, qos, reading)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # SUBACK received
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  protocol=mqtt.MQTTv311, manual_ack=True)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.5, 10)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = lambda *a: self.connected.clear()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.error("ingest: broker %s:%d refused: %s", self.host, self.port, reason_code)
            return
        client.subscribe([(t, 1) for t in self.topics])
        self.connected.set()
        log.info("ingest: subscribed to %s on %s:%d", ", ".join(self.topics), self.host, self.port)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            reading: Reading | None = decode_reading(msg.payload)
        except ValueError as exc:
            self.rejected[str(exc)[:60]] += 1
            log.warning("ingest: rejected message on %s: %s", msg.topic, exc)
            reading = None
        with self._lock:
            self.received += 1
            self._pending.append((msg.mid, msg.qos, reading))

    def flush(self) -> int:
        """Write what arrived, then acknowledge it (rejected messages are acknowledged too: they never parse)."""
        with self._lock:
            batch, self._pending = self._pending[: self.batch_max], self._pending[self.batch_max:]
        if not batch:
            return 0
        readings = [r for _, _, r in batch if r is not None]
        if readings:
            try:
                self.write(readings)
            except Exception:
                with self._lock:  # keep them, unacknowledged, and try again on the next flush
                    self._pending[:0] = batch
                raise
        for mid, qos, _ in batch:
            if qos > 0:
                self.client.ack(mid, qos)
        self.stored += len(readings)
        return len(batch)

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set; flushes every ``flush_s`` or ``batch_max`` messages."""
        stop = stop or self._stop
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        try:
            delay = self.flush_s
            while not stop.is_set():
                try:
                    if self.flush() < self.batch_max:
                        stop.wait(self.flush_s)
                    delay = self.flush_s
                except Exception as exc:  # noqa: BLE001 - the sink is down: keep the messages, retry
                    log.warning("ingest: writing failed (%s); retrying in %.1f s", exc, delay)
                    stop.wait(delay)
                    delay = min(delay * 2, 30.0)
            while self.flush():
                pass
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored, "rejected": dict(self.rejected),
                "connected": self.connected.is_set(), "ts": time.time()}
