"""The real-server fixtures work: write and read back through influxd and mosquitto."""

from __future__ import annotations

import subprocess
import threading

import paho.mqtt.client as mqtt
import requests


def test_influxd_write_and_query(influxd) -> None:
    base = f"http://127.0.0.1:{influxd.port}"
    r = requests.get(f"{base}/ping", timeout=5)
    assert r.status_code == 204 and r.headers.get("X-Influxdb-Version")
    requests.post(f"{base}/query", data={"q": "CREATE DATABASE fixture_check"}, timeout=5).raise_for_status()
    w = requests.post(f"{base}/write", params={"db": "fixture_check", "precision": "s"},
                      data="reading,point=b/p value=21.5 1700000000\n", timeout=5)
    assert w.status_code == 204, w.text
    q = requests.post(f"{base}/query", params={"db": "fixture_check", "epoch": "s"},
                      data={"q": "SELECT value FROM reading"}, timeout=5).json()
    assert q["results"][0]["series"][0]["values"] == [[1700000000, 21.5]]
    # and the independent influx CLI sees the same point
    out = subprocess.run(["influx", "-host", "127.0.0.1", "-port", str(influxd.port), "-database", "fixture_check",
                          "-execute", "SELECT count(value) FROM reading", "-format", "csv"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1].endswith(",1"), out.stdout + out.stderr


def test_mosquitto_publish_and_receive(mosquitto) -> None:
    got: list[bytes] = []
    ready, done = threading.Event(), threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe("fixture/#", qos=1), ready.set())
    sub.on_message = lambda c, u, m: (got.append(m.payload), done.set())
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        assert ready.wait(5)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t", "fixture/x",
                        "-q", "1", "-m", '{"value": 1}'], check=True, timeout=10)
        assert done.wait(5)
        assert got == [b'{"value": 1}']
    finally:
        sub.loop_stop()
        sub.disconnect()
