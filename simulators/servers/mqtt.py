"""MQTT wireless sensors: each sensor (one topic of the site) publishes a JSON reading at its interval.

A payload looks like what Zigbee2MQTT or a LoRaWAN network server forwards:
``{"temp": 23.4, "co2": 612, "battery": 87, "rssi": -71, "linkquality": 112, "ts": 1764130000.0}``.
Each point on the topic puts its value at its own ``value_path`` (dotted paths make nested objects); the
timestamp goes to the points' ``time_path`` (default ``ts``), as wall-clock epoch seconds (when it is sent, as a
real gateway stamps it; the simulation clock runs ahead at --speed > 1). Battery % and RSSI dBm are always
present: taken from the ValueSource when the site declares them as points, otherwise simulated per
sensor (battery draining slowly from a seeded level, RSSI wandering around a seeded mean).

The interval is the smallest ``poll_interval_s`` of the topic's points (else the gateway device's), divided by
``speed``; every sensor also publishes once right after start, like a sensor joining. Device modes of the
gateway: *offline* publishes nothing; *errors* publishes ``{"error": "sensor fault", ...}`` without values;
*garbage* publishes truncated, unparseable JSON. paho-mqtt 2 (CallbackAPIVersion.VERSION2) runs its own network
thread and reconnects with backoff. paho drops a QoS 0 publish made while disconnected (it queues only QoS 1
and 2), so a state sensor's change uplink (leak, smoke) goes out at QoS 1, as alarm sensors send a confirmed
uplink: a change that happens while the broker is away is delivered when it comes back, not an hour later with
the next heartbeat. After every reconnect, state sensors also re-send their current state at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt

from buildings.site import Device, Point, Protocol, Site, point_key
from simulators.servers import Endpoint
from simulators.values import DeviceMode, ValueSource

log = logging.getLogger(__name__)
EVENT_CHECK_S = 1.0  # how often a state sensor looks for a change to report at once


@dataclass
class Sensor:
    """One wireless sensor = one topic, with the points it reports."""

    topic: str
    building: str
    device_key: str
    interval_s: float
    points: list[tuple[str, str]]  # (point key, value_path)
    time_path: str = "ts"
    battery_path: str | None = None  # set when the site declares the battery as a point
    rssi_path: str | None = None
    seed: int = 0
    started: float | None = None  # simulation time of the first message
    event_keys: list[str] = field(default_factory=list)  # state points (leak, smoke): uplink at once on change

    def simulated_battery(self, now: float) -> float:
        """A seeded start level draining about 1 % per 10 days of simulation time."""
        if self.started is None:
            self.started = now
        start = 60 + (self.seed % 40)
        return max(1.0, min(100.0, round(start - (now - self.started) / 864000, 1)))

    def simulated_rssi(self, rng: random.Random) -> int:
        return int(-55 - (self.seed % 35) + rng.randint(-4, 4))


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    """Put a value at a dotted path, making nested objects on the way."""
    parts = path.split(".")
    for p in parts[:-1]:
        doc = doc.setdefault(p, {})
    doc[parts[-1]] = value


def _get(doc: dict[str, Any], path: str) -> Any:
    for p in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(p)  # type: ignore[assignment]
    return doc


def _json_value(v: float | str | None) -> Any:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return None
        return round(v, 3)
    return v


def mqtt_sensors(site: Site) -> list[Sensor]:
    """The site's MQTT points grouped by topic into sensors."""
    by_topic: dict[str, Sensor] = {}
    for bf in site.files:
        for _eq, p in bf.points():
            if p.mqtt is None:
                continue
            dev: Device = bf.device_by_id[p.mqtt.device]
            s = by_topic.get(p.mqtt.topic)
            interval = p.poll_interval_s or dev.poll_interval_s
            if s is None:
                s = by_topic[p.mqtt.topic] = Sensor(
                    topic=p.mqtt.topic, building=bf.building.id, device_key=point_key(bf.building.id, dev.id),
                    interval_s=interval, points=[], seed=zlib.crc32(p.mqtt.topic.encode()))
            s.interval_s = min(s.interval_s, interval)
            key = point_key(bf.building.id, p.id)
            s.points.append((key, p.mqtt.value_path))
            if p.unit == "bool":
                s.event_keys.append(key)
            if p.mqtt.time_path:
                s.time_path = p.mqtt.time_path
            if _is(p, "Battery", "battery"):
                s.battery_path = p.mqtt.value_path
            elif _is(p, "Signal_Strength", "rssi"):
                s.rssi_path = p.mqtt.value_path
    return list(by_topic.values())


def _is(p: Point, brick_word: str, path_word: str) -> bool:
    return brick_word in p.brick or p.mqtt is not None and p.mqtt.value_path.split(".")[-1] == path_word


def broker_from_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """(host, port, tls, username, password) from mqtt://[user[:pass]@]host[:port] or mqtts://..."""
    u = urlparse(url)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"broker URL {url!r}: use mqtt://host:port or mqtts://host:port")
    tls = u.scheme in ("mqtts", "ssl")
    if not u.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    return (u.hostname, u.port or (8883 if tls else 1883), tls, unquote(u.username) if u.username else None,
            unquote(u.password) if u.password else None)


class MqttSensorPublisher:
    """Publishes every sensor of a site to one broker until stopped."""

    def __init__(self, sensors: list[Sensor], values: ValueSource, url: str, speed: float = 1.0,
                 username: str | None = None, password: str | None = None, qos: int = 0,
                 client_id: str | None = None) -> None:
        self.sensors, self.values, self.url, self.speed, self.qos = sensors, values, url, max(speed, 1e-9), qos
        host, port, tls, user, pw = broker_from_url(url)
        self.host, self.port = host, port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or
                                  f"retrofit-sim-{random.getrandbits(32):08x}", protocol=mqtt.MQTTv311)
        if tls:
            self.client.tls_set()
        if user or username:
            self.client.username_pw_set(username or user, password if password is not None else pw)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(10000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.connected = threading.Event()
        self.published = 0
        self._rng = random.Random(1)
        self._tasks: list[asyncio.Task] = []
        self._connects = 0  # counted by paho's thread; a state sensor re-sends when it changes (a reconnect)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%s refused the simulator: %s", self.host, self.port, reason_code)
            return
        self._connects += 1
        if self._connects > 1:
            log.warning("MQTT broker %s:%s reconnected; state sensors re-send their state", self.host, self.port)
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("MQTT broker %s:%s dropped the simulator (%s); reconnecting", self.host, self.port,
                        reason_code)

    async def start(self, wait_s: float = 5.0) -> MqttSensorPublisher:
        """Connect (paho's thread keeps reconnecting) and start one publishing task per sensor."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not await asyncio.to_thread(self.connected.wait, wait_s):
            log.warning("MQTT broker %s:%s not reachable yet; sensors will publish once it is", self.host, self.port)
        for i, s in enumerate(self.sensors):
            self._tasks.append(asyncio.create_task(self._run(s, i), name=f"mqtt-sensor-{s.topic}"))
        return self

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def endpoints(self) -> list[Endpoint]:
        counts: dict[str, int] = {}
        for s in self.sensors:
            counts[s.device_key] = counts.get(s.device_key, 0) + len(s.points)
        out = []
        for s in self.sensors:
            b, _, d = s.device_key.partition("/")
            out.append(Endpoint("mqtt", self.host, self.port, b, d, topic=s.topic, points=len(s.points)))
        return out

    async def _run(self, s: Sensor, index: int) -> None:
        """Publish at the sensor's interval; a state sensor (leak, smoke) also sends at once when its state
        changes, as real LoRaWAN/Zigbee alarm sensors send an event uplink instead of waiting for the heartbeat."""
        await asyncio.sleep((index % 50) * 0.01)  # spread the join burst a little
        loop = asyncio.get_running_loop()
        event = False
        seen_connects = self._connects
        while True:
            try:
                self.publish_once(s, confirmed=event)
            except Exception:  # noqa: BLE001 - one sensor's bad value must not stop the others
                log.exception("MQTT sensor %s failed to publish", s.topic)
            due = loop.time() + s.interval_s / self.speed
            event = False
            if not s.event_keys:
                await asyncio.sleep(due - loop.time())
                continue
            state = [self.values.value(k) for k in s.event_keys]
            while loop.time() < due:
                await asyncio.sleep(min(EVENT_CHECK_S, max(0.0, due - loop.time())))
                if [self.values.value(k) for k in s.event_keys] != state or self._connects != seen_connects:
                    event, seen_connects = True, self._connects
                    break

    def payload(self, s: Sensor) -> bytes | None:
        """The sensor's message now, as the gateway's device mode shapes it (None: publish nothing)."""
        mode = self.values.device_mode(s.device_key)
        if mode == DeviceMode.OFFLINE:
            return None
        now = self.values.now()
        doc: dict[str, Any] = {}
        if mode != DeviceMode.ERRORS:
            for key, path in s.points:
                _set(doc, path, _json_value(self.values.value(key)))
        else:
            doc["error"] = "sensor fault"
        if s.battery_path is None:
            doc["battery"] = s.simulated_battery(now)
        elif _get(doc, s.battery_path) is None and mode != DeviceMode.ERRORS:
            _set(doc, s.battery_path, s.simulated_battery(now))
        if s.rssi_path is None:
            doc["rssi"] = s.simulated_rssi(self._rng)
        elif _get(doc, s.rssi_path) is None and mode != DeviceMode.ERRORS:
            _set(doc, s.rssi_path, s.simulated_rssi(self._rng))
        # Stamped with the wall clock, as a real gateway stamps its uplink, not with the simulation clock: at
        # --speed 10 that clock runs ahead, and mixed with the collector-stamped Modbus/BACnet readings it pulled
        # the rules' event time minutes into the future (every polled device then looked stale).
        _set(doc, s.time_path, round(time.time(), 3))
        data = json.dumps(doc, separators=(",", ":")).encode()
        if mode == DeviceMode.GARBAGE:
            return data[: max(1, len(data) // 2)] + b"\xff"
        return data

    def publish_once(self, s: Sensor, confirmed: bool = False) -> bool:
        """Publish the sensor's message now; `confirmed` (a state change) uses QoS >= 1 so paho keeps it while
        the broker is away."""
        data = self.payload(s)
        if data is None:
            return False
        # Retained, like a gateway that keeps each sensor's last state on the broker: a collector that (re)connects
        # gets every sensor's latest reading at once instead of waiting up to a heartbeat interval. Stores key
        # readings by (point, time), so receiving the same retained message twice changes nothing.
        self.client.publish(s.topic, data, qos=max(self.qos, 1) if confirmed else self.qos, retain=True)
        self.published += 1
        return True


async def start_mqtt(site: Site, values: ValueSource, url: str, speed: float = 1.0, username: str | None = None,
                     password: str | None = None) -> MqttSensorPublisher | None:
    """Start publishing the site's wireless sensors to the broker; None when the site has no MQTT points."""
    sensors = mqtt_sensors(site)
    if not sensors:
        return None
    return await MqttSensorPublisher(sensors, values, url, speed, username, password).start()


def has_mqtt(site: Site) -> bool:
    return any(d.protocol == Protocol.MQTT for bf in site.files for d in bf.devices)
