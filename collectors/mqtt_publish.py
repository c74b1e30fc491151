"""Readings to MQTT (QoS 1) for edge collectors and other consumers, and back (``retrofit ingest``).

Topic per building and point: ``{root}/readings/{building}/{point}``; payload JSON
``{"point": "b/p", "ts": 1764130000.0, "value": 21.5, "quality": "good"}``.

The publisher keeps a persistent session under a fixed client id, publishes with QoS 1 and lets paho hold every
unacknowledged message (unbounded paho queue, our own bound of ``max_pending`` with back-pressure beyond it):
while the broker is down messages wait, after it restarts paho resends them, so no QoS 1 message is lost.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from collectors.drivers.mqtt import broker_of, mqtt_client
from telemetry.reading import Quality, Reading

log = logging.getLogger("collectors.mqtt_publish")


def reading_topic(root: str, point_key: str) -> str:
    building, _, point = point_key.partition("/")
    return f"{root}/readings/{building}/{point}"


def encode_reading(r: Reading) -> bytes:
    value = r.value
    if isinstance(value, float) and not math.isfinite(value):
        value = None  # JSON has no NaN; the quality already says the value was bad
    return json.dumps({"point": r.point, "ts": r.ts, "value": value, "quality": r.quality.value},
                      separators=(",", ":")).encode()


def decode_reading(payload: bytes) -> Reading:
    """A Reading from a publisher payload; ValueError with the reason if it is not one."""
    doc = json.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    point, ts, value = doc.get("point"), doc.get("ts"), doc.get("value")
    if not isinstance(point, str) or "/" not in point:
        raise ValueError("point must be 'building/point'")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValueError("ts must be epoch seconds")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float | str)):
        raise ValueError("value must be a number, a string or null")
    try:
        quality = Quality(doc.get("quality", "good"))
    except ValueError:
        raise ValueError(f"unknown quality {doc.get('quality')!r}") from None
    return Reading(point, float(ts), float(value) if isinstance(value, int | float) else value, quality)


class MqttPublisher:
    """A pipeline sink publishing every reading with QoS 1; reconnecting; loses no QoS 1 message."""

    must_deliver = True
    name = "mqtt"

    def __init__(self, url: str, root: str = "retrofit", client_id: str = "retrofit-collector",
                 username: str | None = None, password: str | None = None, max_pending: int = 100_000) -> None:
        self.host, self.port = broker_of(url)
        self.root = root
        self.max_pending = max_pending
        self.published = 0
        self.acked = 0
        self._cv = threading.Condition()
        self.client = mqtt_client(client_id, clean=False, username=username, password=password)
        self.client.max_inflight_messages_set(100)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if not reason_code.is_failure:
            self.connected.set()
            log.info("mqtt publisher: connected to %s:%d", self.host, self.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self.connected.clear()
        log.warning("mqtt publisher: lost %s:%d (%s); %d messages wait for the broker", self.host, self.port,
                    reason_code, self.pending)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        with self._cv:
            self.acked += 1
            self._cv.notify_all()

    @property
    def pending(self) -> int:
        return self.published - self.acked

    def write(self, batch: Sequence[Reading]) -> None:
        with self._cv:  # back-pressure: never hold more than max_pending unacknowledged messages
            while self.pending > self.max_pending:
                self._cv.wait(1.0)
        for r in batch:
            self.client.publish(reading_topic(self.root, r.point), encode_reading(r), qos=1)
            with self._cv:
                self.published += 1

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the broker acknowledged everything published; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self.pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        if not self.flush(10.0):
            log.error("mqtt publisher: %d messages were not acknowledged by %s:%d before shutdown; they stay "
                      "in the broker session only if it received them", self.pending, self.host, self.port)
        self.client.disconnect()
        self.client.loop_stop()

    def stats(self) -> dict[str, Any]:
        return {"broker": f"{self.host}:{self.port}", "connected": self.connected.is_set(),
                "published": self.published, "acked": self.acked, "pending": self.pending}
