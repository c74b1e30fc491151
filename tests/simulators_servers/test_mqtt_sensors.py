"""Wireless sensors publishing JSON to a real Mosquitto broker, checked with mosquitto_sub."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from buildings.site import load_site
from retrofit.devservers import ServerProcess
from simulators.servers.mqtt import MqttSensorPublisher, broker_from_url, mqtt_sensors
from simulators.values import DeviceMode
from tests.simulators_servers.conftest import DictValues, write_site

pytestmark = pytest.mark.anyio


def sensor_site(dir_: Path, topic_root: str) -> Path:
    devices = [{"id": "gw", "protocol": "mqtt", "topic_prefix": topic_root, "poll_interval_s": 60}]
    t1, t2 = f"{topic_root}/iaq-1", f"{topic_root}/leak-1"
    pts: list[dict[str, Any]] = [
        {"id": "iaq-1-temp", "name": "T", "brick": "Zone_Air_Temperature_Sensor", "unit": "degC",
         "poll_interval_s": 0.3,
         "mqtt": {"device": "gw", "topic": t1, "value_path": "temp", "time_path": "ts"}},
        {"id": "iaq-1-co2", "name": "CO2", "brick": "CO2_Sensor", "unit": "ppm", "poll_interval_s": 0.3,
         "mqtt": {"device": "gw", "topic": t1, "value_path": "air.co2", "time_path": "ts"}},
        {"id": "iaq-1-bat", "name": "Battery", "brick": "Battery_Level_Sensor", "unit": "%", "poll_interval_s": 0.3,
         "mqtt": {"device": "gw", "topic": t1, "value_path": "battery", "time_path": "ts"}},
        {"id": "leak-1", "name": "Leak", "brick": "Leak_Sensor", "unit": "bool", "poll_interval_s": 0.3,
         "mqtt": {"device": "gw", "topic": t2, "value_path": "water_leak"}},
    ]
    return write_site(dir_, devices, pts)


def sub(port: int, topic: str, count: int, wait_s: int = 10, fresh: bool = False) -> list[tuple[str, bytes]]:
    """Run Debian's mosquitto_sub and return (topic, payload) pairs (fresh: skip retained messages)."""
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", str(count),
                          "-W", str(wait_s), "-F", "%t\t%p", *(["-R"] if fresh else [])],
                         capture_output=True, timeout=wait_s + 5)
    lines = [ln for ln in out.stdout.split(b"\n") if ln]
    return [(t.decode(), p) for t, _, p in (ln.partition(b"\t") for ln in lines)]


async def test_sensors_publish_json_seen_by_mosquitto_sub(mosquitto: ServerProcess, tmp_path: Path) -> None:
    site = load_site(str(sensor_site(tmp_path, "t1/b1")))
    vals = DictValues({"b1/iaq-1-temp": 23.456, "b1/iaq-1-co2": 612.0, "b1/iaq-1-bat": 87.0, "b1/leak-1": 0.0})
    sensors = mqtt_sensors(site)
    assert {s.topic for s in sensors} == {"t1/b1/iaq-1", "t1/b1/leak-1"}
    pub = await MqttSensorPublisher(sensors, vals, f"mqtt://127.0.0.1:{mosquitto.port}").start()
    try:
        got = await asyncio.to_thread(sub, mosquitto.port, "t1/b1/#", 6)
    finally:
        await pub.stop()
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in got:
        by_topic.setdefault(topic, []).append(json.loads(payload))
    iaq, leak = by_topic["t1/b1/iaq-1"][0], by_topic["t1/b1/leak-1"][0]
    assert iaq["temp"] == 23.456 and iaq["air"]["co2"] == 612.0 and iaq["battery"] == 87.0
    assert -100 < iaq["rssi"] < -40 and abs(iaq["ts"] - vals.now()) < 30
    assert leak["water_leak"] == 0.0 and 0 < leak["battery"] <= 100 and "rssi" in leak and "ts" in leak
    assert len(by_topic["t1/b1/iaq-1"]) >= 2  # at the point's interval, not once


async def test_gateway_modes(mosquitto: ServerProcess, tmp_path: Path) -> None:
    site = load_site(str(sensor_site(tmp_path, "t2/b1")))
    vals = DictValues({"b1/iaq-1-temp": 20.0, "b1/leak-1": 1.0})
    pub = MqttSensorPublisher(mqtt_sensors(site), vals, f"mqtt://127.0.0.1:{mosquitto.port}")
    vals.modes["b1/gw"] = DeviceMode.GARBAGE
    await pub.start()
    try:
        garbage = await asyncio.to_thread(sub, mosquitto.port, "t2/b1/#", 2, 10, True)
        assert garbage
        for _t, payload in garbage:
            with pytest.raises(ValueError):
                json.loads(payload)
        vals.modes["b1/gw"] = DeviceMode.ERRORS
        await asyncio.sleep(0.4)
        errors = [json.loads(p) for _t, p in await asyncio.to_thread(sub, mosquitto.port, "t2/b1/#", 2, 10, True)]
        assert all(e["error"] == "sensor fault" and "temp" not in e and "water_leak" not in e for e in errors)
        vals.modes["b1/gw"] = DeviceMode.OFFLINE
        await asyncio.sleep(0.4)
        assert await asyncio.to_thread(sub, mosquitto.port, "t2/b1/#", 1, 2, True) == []
    finally:
        await pub.stop()


def test_broker_url_parsing() -> None:
    assert broker_from_url("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884, False, None, None)
    assert broker_from_url("mqtts://u:p%40ss@broker") == ("broker", 8883, True, "u", "p@ss")
    with pytest.raises(ValueError, match="mqtt://"):
        broker_from_url("http://x")


async def test_publisher_reconnects_after_broker_restart(mosquitto_private: ServerProcess, tmp_path: Path) -> None:
    site = load_site(str(sensor_site(tmp_path, "t3/b1")))
    vals = DictValues({"b1/iaq-1-temp": 21.0, "b1/leak-1": 0.0})
    pub = await MqttSensorPublisher(mqtt_sensors(site), vals, f"mqtt://127.0.0.1:{mosquitto_private.port}").start()
    try:
        assert await asyncio.to_thread(sub, mosquitto_private.port, "t3/b1/#", 1)
        await asyncio.to_thread(mosquitto_private.restart)
        vals.values["b1/iaq-1-temp"] = 25.0
        # fresh: the restarted broker also restores the retained pre-restart message (persistence works)
        got = await asyncio.to_thread(sub, mosquitto_private.port, "t3/b1/iaq-1", 1, 15, True)
        assert got and json.loads(got[0][1])["temp"] == 25.0
    finally:
        await pub.stop()


async def test_state_change_is_sent_at_once_and_retained(mosquitto: ServerProcess, tmp_path: Path) -> None:
    """A leak sensor reports a change without waiting for its heartbeat, and a late subscriber gets the last state."""
    path = sensor_site(tmp_path, "t4/b1")
    path.write_text(path.read_text().replace("0.3", "600"))  # heartbeat every 10 minutes
    site = load_site(str(path))
    assert min(s.interval_s for s in mqtt_sensors(site)) == 600
    vals = DictValues({"b1/iaq-1-temp": 21.0, "b1/leak-1": 0.0})
    pub = await MqttSensorPublisher(mqtt_sensors(site), vals, f"mqtt://127.0.0.1:{mosquitto.port}").start()
    try:
        first = await asyncio.to_thread(sub, mosquitto.port, "t4/b1/leak-1", 1)  # the retained heartbeat
        assert first and json.loads(first[0][1])["water_leak"] == 0
        vals.values["b1/leak-1"] = 1.0
        got = await asyncio.to_thread(sub, mosquitto.port, "t4/b1/leak-1", 1, 5, True)
        assert got and json.loads(got[0][1])["water_leak"] == 1
    finally:
        await pub.stop()


async def test_state_change_while_broker_is_down_arrives_when_it_returns(mosquitto_private: ServerProcess,
                                                                        tmp_path: Path) -> None:
    """paho drops QoS 0 publishes made while disconnected: a leak that starts during a broker outage must still
    reach the broker when it is back (confirmed uplink + re-send on reconnect), not with the next heartbeat."""
    path = sensor_site(tmp_path, "t5/b1")
    path.write_text(path.read_text().replace("0.3", "600"))  # heartbeat every 10 minutes
    site = load_site(str(path))
    vals = DictValues({"b1/iaq-1-temp": 21.0, "b1/leak-1": 0.0})
    pub = await MqttSensorPublisher(mqtt_sensors(site), vals, f"mqtt://127.0.0.1:{mosquitto_private.port}").start()
    try:
        first = await asyncio.to_thread(sub, mosquitto_private.port, "t5/b1/leak-1", 1)
        assert first and json.loads(first[0][1])["water_leak"] == 0
        await asyncio.to_thread(mosquitto_private.stop, False)
        await asyncio.sleep(0.2)
        vals.values["b1/leak-1"] = 1.0
        await asyncio.sleep(2.5)  # the change is seen (EVENT_CHECK_S) while the broker is away
        await asyncio.to_thread(mosquitto_private.start)
        # the broker restores the retained pre-outage state (0); the leak follows once the simulator reconnects
        got = await asyncio.to_thread(sub, mosquitto_private.port, "t5/b1/leak-1", 2, 20)
        assert got and json.loads(got[-1][1])["water_leak"] == 1, got
    finally:
        await pub.stop()
