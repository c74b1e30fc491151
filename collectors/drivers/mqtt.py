"""MQTT wireless sensors (paho-mqtt, callback API version 2): subscribe to the site's topics, parse JSON.

Unlike Modbus and BACnet, sensors push: one ``MqttSensors`` client per broker subscribes (QoS 1) to every
sensor topic of the site and turns each message into a Reading, value and optional timestamp found by dotted
JSON path. A payload that is oversized, not UTF-8, not JSON, lacks the value, has a non-numeric value or an
impossible timestamp is rejected with a reason that is counted per reason and logged (rate-limited), never
stored. paho reconnects by itself (backoff 0.5-10 s) and we re-subscribe on every connect, so readings resume
after a broker restart without anyone's help.

``MqttDriver`` puts this behind the one driver interface: a push-only driver (``start(emit)`` / ``stop()``),
one per broker, shared by every MQTT device of the site that uses that broker.

Sample device config (site file; the broker is ``--mqtt-url`` / ``RETROFIT_MQTT_URL``, else host:port)::

    devices:
      - id: sensor-gw
        protocol: mqtt
        host: 127.0.0.1                              # [127.0.0.1] only without a site broker
        port: 1883                                   # [1883]
        topic_prefix: yuzhong/daping-makerworks      # joined to point topics that do not start with it
    # a point:  mqtt: {device: sensor-gw, topic: iaq-a, value_path: co2, time_path: ts}
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from buildings.site import Device, MqttSource, PointRef
from collectors.decode import judge
from collectors.drivers.base import Driver, DriverContext, Emit
from telemetry.reading import Reading

log = logging.getLogger("collectors.mqtt")

MAX_PAYLOAD_BYTES = 4096
EARLIEST_TS = 946684800.0  # 2000-01-01: older timestamps are a device clock that was never set
FUTURE_SLACK_S = 86400.0


class PayloadRejected(ValueError):
    """A sensor payload we will not store; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def full_topic(device: Device, src: MqttSource) -> str:
    """A point's topic on the broker: the device's topic_prefix joined to the point's topic, when given."""
    prefix = (device.topic_prefix or "").strip("/")
    if not prefix or src.topic == prefix or src.topic.startswith(prefix + "/"):
        return src.topic
    return f"{prefix}/{src.topic}"


def dig(doc: Any, path: str) -> Any:
    """The value at a dotted path (``a.b.0.c``; list indexes allowed); KeyError when absent."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(path)
    return cur


def parse_timestamp(raw: Any) -> float:
    """Epoch seconds (or milliseconds, or microseconds) or an ISO 8601 string -> UTC epoch seconds."""
    if isinstance(raw, bool):
        raise PayloadRejected("bad-timestamp", "a boolean is not a time")
    if isinstance(raw, int | float):
        ts = float(raw)
        if not math.isfinite(ts):
            raise PayloadRejected("bad-timestamp", "not finite")
        if ts > 1e14:
            ts /= 1e6
        elif ts > 1e11:
            ts /= 1e3
    elif isinstance(raw, str):
        try:
            parsed = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise PayloadRejected("bad-timestamp", f"{raw[:40]!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        ts = parsed.timestamp()
    else:
        raise PayloadRejected("bad-timestamp", f"a {type(raw).__name__} is not a time")
    if ts < EARLIEST_TS or ts > time.time() + FUTURE_SLACK_S:
        raise PayloadRejected("bad-timestamp", f"{ts:.0f} is outside 2000..now+1 day")
    return ts


def parse_payload(payload: bytes, value_path: str, time_path: str | None,
                  max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[float | str, float | None]:
    """(value, ts or None) from a sensor's JSON payload; raises PayloadRejected with the reason."""
    if len(payload) > max_bytes:
        raise PayloadRejected("oversized", f"{len(payload)} bytes > {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadRejected("not-utf8") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise PayloadRejected("not-json") from None
    if not isinstance(doc, dict):
        raise PayloadRejected("not-object", f"top level is a {type(doc).__name__}")
    try:
        raw = dig(doc, value_path)
    except KeyError:
        raise PayloadRejected("no-value", f"nothing at {value_path!r}") from None
    if isinstance(raw, bool):
        value: float | str = 1.0 if raw else 0.0
    elif isinstance(raw, int | float):
        value = float(raw)  # NaN / inf are kept; judge() marks them BAD
    else:
        raise PayloadRejected("value-not-number", f"a {type(raw).__name__} at {value_path!r}")
    ts = None
    if time_path:
        try:
            ts = parse_timestamp(dig(doc, time_path))
        except KeyError:
            raise PayloadRejected("no-timestamp", f"nothing at {time_path!r}") from None
    return value, ts


@dataclass(frozen=True, slots=True)
class Subscription:
    key: str
    value_path: str
    time_path: str | None
    range: tuple[float, float] | None


def mqtt_client(client_id: str = "", clean: bool = True, username: str | None = None,
                password: str | None = None) -> mqtt.Client:
    """A paho 2 client with the VERSION2 callback API (never the silent VERSION1 fallback)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                         protocol=mqtt.MQTTv311)
    if username:
        client.username_pw_set(username, password)
    client.reconnect_delay_set(0.5, 10)
    client.max_queued_messages_set(0)  # unlimited: QoS 1 messages wait for the broker instead of dropping
    return client


def broker_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp", ""):
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} in {url!r}; use mqtt://host:port")
    return parts.hostname or "127.0.0.1", parts.port or 1883


class MqttSensors:
    """Subscribes to the sensor topics of a site on one broker; emits Readings through ``emit`` (thread-safe)."""

    def __init__(self, url: str, refs: Iterable[PointRef], emit: Callable[[list[Reading]], None],
                 username: str | None = None, password: str | None = None,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES, client_id: str = "") -> None:
        self.url = url
        self.host, self.port = broker_of(url)
        self.emit = emit
        self.max_payload_bytes = max_payload_bytes
        self.subs: dict[str, list[Subscription]] = {}
        for r in refs:
            src = r.point.mqtt
            if src is None:
                continue
            self.subs.setdefault(full_topic(r.device, src), []).append(
                Subscription(r.key, src.value_path, src.time_path, r.point.range))
        self.received = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged our subscriptions (SUBACK)
        self.connects = 0
        self.last_error: str | None = None
        self._last_log = 0.0
        self.client = mqtt_client(client_id, clean=True, username=username, password=password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker {self.host}:{self.port} refused the connection: {reason_code}"
            log.error("%s", self.last_error)
            return
        self.connects += 1
        self.subscribed.clear()
        if self.subs:
            client.subscribe([(t, 1) for t in self.subs])
        else:
            self.subscribed.set()
        self.connected.set()
        log.info("mqtt sensors: connected to %s:%d, %d topics", self.host, self.port, len(self.subs))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any,
                      properties: Any) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            self.last_error = f"broker refused {len(failed)} of {len(reason_codes)} subscriptions: {failed[0]}"
            log.error("mqtt sensors: %s (check the broker's ACL for these topics)", self.last_error)
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if reason_code != 0:
            self.last_error = f"lost broker {self.host}:{self.port}: {reason_code}"
            log.warning("mqtt sensors: %s; reconnecting", self.last_error)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        subs = self.subs.get(msg.topic)
        if not subs:
            return
        out: list[Reading] = []
        for sub in subs:
            try:
                value, ts = parse_payload(msg.payload, sub.value_path, sub.time_path, self.max_payload_bytes)
            except PayloadRejected as exc:
                self._reject(exc, msg.topic)
                continue
            out.append(Reading(sub.key, ts if ts is not None else time.time(), value, judge(value, sub.range)))
        if out:
            self.accepted += len(out)
            self.emit(out)

    def _reject(self, exc: PayloadRejected, topic: str) -> None:
        self.rejected[exc.reason] += 1
        now = time.monotonic()
        if now - self._last_log > 5.0:  # a sensor spamming garbage must not flood the log
            self._last_log = now
            log.warning("mqtt sensors: rejected payload on %s: %s (%d rejected so far: %s)", topic, exc,
                        self.rejected_total, dict(self.rejected))

    def stats(self) -> dict[str, Any]:
        return {"broker": f"{self.host}:{self.port}", "connected": self.connected.is_set(),
                "connects": self.connects, "topics": len(self.subs), "received": self.received,
                "accepted": self.accepted, "rejected": dict(self.rejected), "rejected_total": self.rejected_total,
                "last_error": self.last_error}


def make_driver(ctx: DriverContext, device_key: str, device: Device, points: Sequence[PointRef]) -> MqttDriver:
    """The registry's factory: one driver (one client) per broker, every MQTT device on that broker joins it."""
    url = ctx.mqtt_url or f"mqtt://{device.host}:{device.port or device.default_port}"
    driver = ctx.shared(("mqtt", url), lambda: MqttDriver(url, ctx.mqtt_username, ctx.mqtt_password))
    driver.refs.extend(points)
    return driver


class MqttDriver(Driver[object]):
    """MQTT sensors on one broker as a push-only driver: ``start`` subscribes, ``stop`` disconnects."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        self.name = f"mqtt {url}"
        self.url = url
        self.auth = (username, password)
        self.refs: list[PointRef] = []
        self.sensors: MqttSensors | None = None

    async def start(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()

        def emit_threadsafe(batch: list[Reading]) -> None:
            # Called on paho's thread: wait for the pipeline to take it (back-pressure reaches the broker).
            try:
                asyncio.run_coroutine_threadsafe(emit(batch), loop).result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - the loop closing at shutdown, or a stuck pipeline
                log.error("mqtt sensors: could not hand %d readings to the pipeline: %s", len(batch), exc)

        self.sensors = MqttSensors(self.url, self.refs, emit_threadsafe, *self.auth)
        self.sensors.start()

    async def stop(self) -> None:
        if self.sensors is not None:
            await asyncio.to_thread(self.sensors.stop)

    def stats(self) -> dict[str, Any] | None:
        return self.sensors.stats() if self.sensors is not None else None
