"""MQTT sensors, the MQTT publisher and ingest against a real Mosquitto: fuzzed payloads, broker restarts."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.drivers.mqtt import MqttSensors, PayloadRejected, mqtt_client, parse_payload
from collectors.ingest import Ingest
from collectors.mqtt_publish import MqttPublisher, decode_reading, encode_reading
from retrofit.devservers import ServerProcess
from telemetry.reading import Quality, Reading
from tests.collectors.conftest import building_doc, point, write_site

NOW = time.time()


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sensor_site(tmp_path: Path, topic: str = "t/sensor-1"):
    dev = {"id": "gw", "protocol": "mqtt", "topic_prefix": "t"}
    pts = [point("temp", {"device": "gw", "topic": topic, "value_path": "data.temp", "time_path": "ts"}, "mqtt",
                 range=[-40, 80])]
    return write_site(tmp_path / "s", [building_doc("b1", [dev], pts)])


@pytest.mark.parametrize("payload, reason", [
    (b"x" * 5000, "oversized"),
    (b"\xff\xfe{}", "not-utf8"),
    (b"{\"data\": {\"temp\": 1", "not-json"),
    (b"[1, 2]", "not-object"),
    (b"{\"data\": {}}", "no-value"),
    (b"{\"data\": {\"temp\": \"21\"}, \"ts\": 1}", "value-not-number"),
    (b"{\"data\": {\"temp\": 21}}", "no-timestamp"),
    (b"{\"data\": {\"temp\": 21}, \"ts\": 12}", "bad-timestamp"),
    (b"{\"data\": {\"temp\": 21}, \"ts\": \"yesterday\"}", "bad-timestamp"),
])
def test_payload_rejections_name_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadRejected) as exc:
        parse_payload(payload, "data.temp", "ts")
    assert exc.value.reason == reason


def test_payload_values_and_timestamps() -> None:
    assert parse_payload(b'{"data": {"temp": 21.5}, "ts": "2026-11-26T01:00:00Z"}', "data.temp", "ts") == (
        21.5, 1795654800.0)
    assert parse_payload(b'{"data": {"temp": true}, "ts": 1795654800000}', "data.temp", "ts") == (1.0, 1795654800.0)
    v, _ = parse_payload(b'{"data": {"temp": NaN}, "ts": 1795654800}', "data.temp", "ts")
    assert math.isnan(v)  # type: ignore[arg-type]  # kept; the collector marks it BAD


def fuzz_payloads(n: int, seed: int = 7) -> tuple[list[bytes], int]:
    """n payloads built so each one's fate is known by construction; returns (payloads, expected rejected)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    rejected = 0
    for _ in range(n):
        good = {"data": {"temp": round(rng.uniform(-30, 70), 2)}, "ts": NOW - rng.uniform(0, 3600),
                "battery": rng.randint(0, 100)}
        kind = rng.randrange(10)
        if kind == 0:
            out.append(json.dumps(good).encode())
            continue
        if kind == 1:  # NaN / infinite values are kept (flagged BAD), not rejected
            marked = {**good, "data": {"temp": "__VALUE__"}}  # a placeholder no number can contain
            out.append(json.dumps(marked).replace('"__VALUE__"', rng.choice(["NaN", "Infinity"])).encode())
            continue
        rejected += 1
        if kind == 2:  # truncated: any proper prefix of a JSON object is invalid
            text = json.dumps(good)
            out.append(text[: rng.randrange(0, len(text) - 1)].encode())
        elif kind == 3:  # binary noise that is never UTF-8
            out.append(b"\xff" + rng.randbytes(rng.randrange(0, 64)))
        elif kind == 4:
            out.append(json.dumps({"data": {"temp": rng.choice(["21", None, [1], {"v": 1}])}, "ts": NOW}).encode())
        elif kind == 5:
            out.append(json.dumps({"data": {"hum": 40}, "ts": NOW}).encode())
        elif kind == 6:
            out.append(json.dumps({"data": {"temp": 20}, "ts": rng.choice([0, -5, "noon", None, NOW + 9e6])})
                       .encode())
        elif kind == 7:
            out.append(json.dumps(rng.choice([[1, 2], 3.5, "x", None, True])).encode())
        elif kind == 8:
            pad = "x" * rng.randrange(4100, 6000)
            out.append(json.dumps({**good, "pad": pad}).encode())
        else:
            out.append(bytes(rng.choice(b"{}[]\":,0123456789abc ") for _ in range(rng.randrange(1, 40))) + b"{")
    return out, rejected


def test_fuzzed_payloads_no_crash_exact_rejected_count(tmp_path: Path, mosquitto: ServerProcess) -> None:
    site = sensor_site(tmp_path)
    readings: list[Reading] = []
    lock = threading.Lock()

    def emit(batch: list[Reading]) -> None:
        with lock:
            readings.extend(batch)

    sensors = MqttSensors(f"mqtt://127.0.0.1:{mosquitto.port}", site.points.values(), emit)
    sensors.start()
    pub = mqtt_client()
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        assert sensors.subscribed.wait(10)
        payloads, expected_rejected = fuzz_payloads(10_000)
        infos = [pub.publish("t/sensor-1", p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
        wait_for(lambda: sensors.received >= len(payloads), 60, "all fuzzed messages")
        time.sleep(0.2)
        assert sensors.received == len(payloads)
        assert sensors.rejected_total == expected_rejected, dict(sensors.rejected)
        assert sensors.accepted == len(payloads) - expected_rejected == len(readings)
        assert {"oversized", "not-utf8", "not-json", "no-value", "value-not-number", "bad-timestamp",
                "not-object"} <= set(sensors.rejected)
        nan_like = [r for r in readings if not math.isfinite(r.value)]  # type: ignore[arg-type]
        assert nan_like and all(r.quality is Quality.BAD for r in nan_like)
        assert all(r.quality in (Quality.GOOD, Quality.OUT_OF_RANGE) for r in readings if r not in nan_like)
    finally:
        pub.loop_stop()
        pub.disconnect()
        sensors.stop()


def test_broker_restart_sensors_resume_and_publisher_loses_nothing(tmp_path: Path,
                                                                   mosquitto_persistent: ServerProcess) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto_persistent.port}"
    site = sensor_site(tmp_path)
    sensed: list[Reading] = []
    sensors = MqttSensors(url, site.points.values(), sensed.extend)
    stored: list[Reading] = []
    ingest = Ingest(url, stored.extend, root="rt", client_id="test-ingest", flush_s=0.05)
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    publisher = MqttPublisher(url, root="rt", client_id="test-publisher")
    sensors.start()
    worker.start()
    try:
        assert sensors.subscribed.wait(10) and ingest.subscribed.wait(10) and publisher.connected.wait(10)

        def sensor_message(temp: float) -> None:
            c = mqtt_client()
            c.connect("127.0.0.1", mosquitto_persistent.port)
            c.loop_start()
            c.publish("t/sensor-1", json.dumps({"data": {"temp": temp}, "ts": time.time()}), qos=1).wait_for_publish(5)
            c.loop_stop()
            c.disconnect()

        sensor_message(20.0)
        wait_for(lambda: len(sensed) == 1, 10, "the first sensor reading")
        batch1 = [Reading(f"b1/p{i % 7}", NOW + i, float(i)) for i in range(1000)]
        publisher.write(batch1)
        time.sleep(0.2)
        mosquitto_persistent.stop(remove=False)
        batch2 = [Reading(f"b1/p{i % 7}", NOW + i, float(i)) for i in range(1000, 2000)]
        publisher.write(batch2)  # the broker is down: paho holds these (QoS 1)
        time.sleep(1.0)
        mosquitto_persistent.start()
        assert publisher.flush(30), f"{publisher.pending} messages never acknowledged"
        wait_for(lambda: sensors.subscribed.is_set(), 20, "the sensor subscriber to reconnect and subscribe")
        sensor_message(21.0)
        wait_for(lambda: len(sensed) == 2, 10, "sensor readings after the restart")
        wait_for(lambda: len({r.ts for r in stored}) >= 2000, 30, "every published reading at the ingest side")
        got = {(r.point, r.ts, r.value) for r in stored}
        assert got == {(r.point, r.ts, r.value) for r in batch1 + batch2}
    finally:
        stop.set()
        worker.join(10)
        publisher.close()
        sensors.stop()


def test_reading_payload_round_trip() -> None:
    for r in (Reading("b/p", 1.5, 21.0), Reading("b/s", 2.0, "on", Quality.GOOD), Reading("b/x", 3.0, None,
                                                                                          Quality.COMM_FAILURE)):
        assert decode_reading(encode_reading(r)) == r
    nan = decode_reading(encode_reading(Reading("b/n", 1.0, math.nan, Quality.BAD)))
    assert nan.value is None and nan.quality is Quality.BAD
    with pytest.raises(ValueError):
        decode_reading(b'{"point": "nobuilding", "ts": 1}')


def test_ingest_command_stores_published_readings(tmp_path: Path, mosquitto: ServerProcess) -> None:
    from typer.testing import CliRunner

    from retrofit.cli import app
    from telemetry.embedded import EmbeddedStore

    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    (tmp_path / "none.toml").write_text("")
    env = {"RETROFIT_CONFIG": str(tmp_path / "none.toml"), "RETROFIT_DATA_DIR": str(tmp_path / "data")}
    readings = [Reading(f"b9/p{i % 5}", NOW - 100 + i, float(i)) for i in range(300)]

    # The ingest session exists before the command starts (as after an earlier run): the broker queues for it.
    pre = Ingest(url, lambda batch: None, client_id="test-ingest-cmd", buildings=["b9"])
    pre.client.connect("127.0.0.1", mosquitto.port)
    pre.client.loop_start()
    assert pre.subscribed.wait(10)
    pre.client.disconnect()
    pre.client.loop_stop()

    def publish_later() -> None:
        pub = MqttPublisher(url, root="retrofit", client_id="test-ingest-cmd-pub")
        pub.write(readings)
        pub.close()

    threading.Thread(target=publish_later, daemon=True).start()
    result = CliRunner().invoke(app, ["ingest", "--from", url, "--client-id", "test-ingest-cmd", "--buildings",
                                      "b9", "--duration", "4", "--log-level", "WARNING"], env=env)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output.strip().splitlines()[-1])
    assert stats["stored"] == 300 and not stats["rejected"]
    store = EmbeddedStore(tmp_path / "data" / "telemetry.db", readonly=True)
    try:
        assert store.count([f"b9/p{i}" for i in range(5)]) == 300
    finally:
        store.close()
