"""Scale-out over MQTT, with the real commands as separate processes on one machine:

    retrofit simulate (the sample district, Modbus/BACnet/MQTT on free ports)
      -> one edge `retrofit collect --publish` per building (QoS 1, persistent session each)
      -> Mosquitto
      -> `retrofit ingest --from mqtt://...` -> durable buffer -> InfluxDB   (restarted mid-run: nothing lost)
      -> two `retrofit rules run --from mqtt://... --buildings ...` workers with disjoint building sets

A water leak is injected in one building of each worker (an MQTT wireless sensor for worker A, a Modbus
discrete input of a fire panel for worker B). Shown: readings of all three protocols reach the store through
ingest only (the edge collectors have no InfluxDB), every reading the collectors published is stored, each
worker binds and evaluates only its own buildings (bindings add up to the whole site's, readings evaluated add
up to readings published, no building's reading reaches the other worker), each worker records only its own
buildings' alarms, and each injected leak is one alarm in exactly one worker, also announced on MQTT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from buildings.site import load_site
from collectors.mqtt_publish import decode_reading
from retrofit.cli import app
from retrofit.devservers import ServerProcess
from telemetry.reading import Quality, Reading
from tests.simsupport import RunningSimulator, start_simulate, terminate

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "retrofit.cli"]
WORKERS = {"a": ["huaxin-building", "jiefangbei-tower"], "b": ["chaotianmen-harbour", "daping-makerworks"]}
LEAKS = {"a": "huaxin-building/leak-b1pump-wet",  # LoRa leak sensor behind an MQTT gateway
         "b": "chaotianmen-harbour/kit-leak"}  # fire-panel interface, Modbus discrete input
COLLECT_S = 22.0  # how long the edge collectors run


def _raised(tap: Tap, target: str) -> list[dict]:
    """The 'raised' events of the water-leak rule for one building/point that reached the tap."""
    building, point = target.split("/")
    return [d for t, d in list(tap.alarms) if t == f"retrofit/{building}/alarms/s-water-leak"
            and d["event"] == "raised" and d["subject"] == point]


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Proc:
    """One `retrofit ...` process with its output in files (no pipe to fill up), stopped at the end."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self._out, self._err = open(self.out_path, "wb"), open(self.err_path, "wb")  # noqa: SIM115 - closed in stop
        self.p = subprocess.Popen([*CLI, *args], cwd=ROOT, env=env, stdout=self._out, stderr=self._err)

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_text(self, text: str, timeout: float, stream: str = "out") -> None:
        read = self.out if stream == "out" else self.err
        wait_for(lambda: text in read() or self.p.poll() is not None, timeout, f"{self.name}: {text!r}")
        assert text in read(), f"{self.name} exited {self.p.returncode}:\n{self.out()[-2000:]}\n{self.err()[-3000:]}"

    def stop(self, timeout: float = 30) -> int:
        code = terminate(self.p, timeout)
        self._out.close()
        self._err.close()
        return code

    def last_json(self) -> dict[str, Any]:
        lines = [x for x in self.out().splitlines() if x.startswith("{")]
        assert lines, f"{self.name} printed no JSON:\n{self.out()[-2000:]}\n{self.err()[-3000:]}"
        return json.loads(lines[-1])


class Tap:
    """A plain paho subscriber on the whole readings tree and the alarm topics: what really went over the wire."""

    def __init__(self, port: int) -> None:
        self.readings: list[Reading] = []
        self.arrived: list[float] = []  # monotonic arrival time of each reading
        self.alarms: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"tap-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([("retrofit/readings/#", 1),
                                                                     ("retrofit/+/alarms/#", 1)])
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if msg.topic.startswith("retrofit/readings/"):
                self.readings.append(decode_reading(msg.payload))
                self.arrived.append(time.monotonic())
            else:
                self.alarms.append((msg.topic, json.loads(msg.payload)))

    def count(self) -> int:
        with self.lock:
            return len(self.readings)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()




@pytest.fixture()
def procs() -> Iterator[list[Proc | RunningSimulator]]:
    started: list[Proc | RunningSimulator] = []
    yield started
    for p in reversed(started):
        p.stop(20)


def test_edge_collectors_ingest_and_two_rule_workers_over_mqtt(tmp_path: Path, sample_site_path: Path,
                                                             mosquitto_private: ServerProcess,
                                                             influxd: ServerProcess,
                                                             procs: list[Proc | RunningSimulator]) -> None:
    sample = load_site(str(sample_site_path))
    assert sorted(WORKERS["a"] + WORKERS["b"]) == sorted(b.id for b in sample.buildings)
    url = f"mqtt://127.0.0.1:{mosquitto_private.port}"
    influx_url, database = f"http://127.0.0.1:{influxd.port}", f"scaleout_{uuid.uuid4().hex[:8]}"
    (tmp_path / "none.toml").write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith("RETROFIT_")}
    base.update(RETROFIT_CONFIG=str(tmp_path / "none.toml"), COLUMNS="400")
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, args: list[str], **env: str) -> Proc:
        p = Proc(name, args, {**base, **env}, logs)
        procs.append(p)
        return p

    # the simulated district, on free ports it picks itself and prints
    ctl = tmp_path / "sim-control.json"
    sim = start_simulate(sample_site_path, site=sample, env={**base, "RETROFIT_DATA_DIR": str(tmp_path / "sim")},
                         log=logs / "simulate.err", timeout=60,
                         extra_args=["--mqtt-url", url, "--control-file", str(ctl)])
    procs.append(sim)
    site_dir = Path(sim.site.write_yaml(tmp_path / "site"))

    tap = Tap(mosquitto_private.port)
    try:
        assert tap.subscribed.wait(10)
        # ingest: the only process that talks to InfluxDB
        ingest_env = dict(RETROFIT_DATA_DIR=str(tmp_path / "ingest"), RETROFIT_INFLUX_URL=influx_url,
                          RETROFIT_INFLUX_DATABASE=database)
        ingest_args = ["ingest", "--from", url, "--client-id", "scaleout-ingest"]
        ingest = start("ingest-1", ingest_args, **ingest_env)
        workers = {w: start(f"rules-{w}", ["rules", "run", "--from", url, "--buildings", ",".join(bs), "--site",
                                           str(sample_site_path), "--step", "5", "--lateness", "5", "--json"],
                            RETROFIT_DATA_DIR=str(tmp_path / f"rules-{w}"), RETROFIT_MQTT_URL=url)
                   for w, bs in WORKERS.items()}
        ingest.wait_text("ingest: subscribed", 30, stream="err")
        for w in workers.values():
            w.wait_text("; reading retrofit/readings/", 30)

        # a leak in one building of each worker, there from the first poll: under load the edge collectors' short
        # run may otherwise end before a slow device's next poll sees a leak injected midway
        for target in LEAKS.values():
            r = subprocess.run([*CLI, "simulate", "fault", "inject", "--kind", "water_leak", "--target", target,
                                "--control-file", str(ctl)], cwd=ROOT, env=base, capture_output=True, text=True,
                               timeout=30)
            assert r.returncode == 0, r.stderr

        # one edge collector per building: its own data dir (local buffer, no InfluxDB), its own MQTT session
        edges = {b.id: start(f"collect-{b.id}", ["collect", "--site", str(site_dir / f"{b.id}.yaml"), "--publish",
                                                 "--no-rules", "--duration", str(COLLECT_S)],
                             RETROFIT_DATA_DIR=str(tmp_path / f"edge-{b.id}"), RETROFIT_MQTT_URL=url)
                 for b in sample.buildings}
        wait_for(lambda: len({r.building for r in tap.readings}) == len(edges), 40, "readings from every building")
        t_first = time.monotonic()

        # ingest goes down for a few seconds while the edges publish (its session queues)
        assert ingest.stop() == 0, ingest.err()[-3000:]
        first_stats = ingest.last_json()
        down_from = time.monotonic()
        time.sleep(3)
        ingest = start("ingest-2", ingest_args, **ingest_env)
        ingest.wait_text("ingest: subscribed", 30, stream="err")
        down_to = time.monotonic()

        for b, p in edges.items():
            assert p.p.wait(COLLECT_S + 60) == 0, f"{b}: {p.err()[-3000:]}"
        collected_s = time.monotonic() - t_first
        summaries = {b: p.last_json() for b, p in edges.items()}

        # everything published has been delivered to the tap: stop counting when it stays still
        last = -1
        while tap.count() != last:
            last = tap.count()
            time.sleep(1.5)
        published = list(tap.readings)
        while_down = sum(1 for t in tap.arrived if down_from < t < down_to)
        unique = {(r.point, round(r.ts * 1000)) for r in published}

        from retrofit.settings import Settings
        from telemetry import open_store

        store = open_store(Settings(data_dir=tmp_path / "reader", influx_url=influx_url, influx_database=database),
                           readonly=True)
        try:
            wait_for(lambda: store.count() >= len(unique), 40, f"{len(unique)} readings in InfluxDB", every=1.0)
            stored_count = store.count()
            latest = store.latest()
        finally:
            store.close()
        wait_for(lambda: all(_raised(tap, target) for target in LEAKS.values()), 90, "each leak's alarm over MQTT",
                 every=0.5)
        results = {w: (p.stop(), p.last_json()) for w, p in workers.items()}
        assert ingest.stop() == 0, ingest.err()[-3000:]
        ingest_stats = ingest.last_json()
    finally:
        tap.close()
    sim.stop()

    # --- every reading the edge collectors published went through ingest into InfluxDB, once --------------------
    per_building = Counter(r.building for r in published)
    assert all(s["errors"] == 0 for s in summaries.values()), summaries
    # one MQTT session per edge collector: with a shared client id the broker kept dropping one for the other
    connects = {b: p.err().count("mqtt publisher: connected") for b, p in edges.items()}
    assert set(connects.values()) == {1}, f"edge sessions took each other: connections {connects}"
    assert {b: s["readings"] for b, s in summaries.items()} == dict(per_building), (summaries, per_building)
    assert stored_count == len(unique), (stored_count, len(unique))
    assert ingest_stats["rejected"] == {} and first_stats["rejected"] == {}
    # the broker kept ingest's session while it was down: what was published meanwhile came with the restart
    assert while_down > 0 and ingest_stats["received"] >= while_down, (while_down, ingest_stats)
    assert first_stats["received"] + ingest_stats["received"] >= len(published)
    good = Counter(sample.points[k].point.protocol_family for k, r in latest.items()
                   if r.quality is Quality.GOOD and k in sample.points)
    assert good["modbus"] >= 200 and good["bacnet"] >= 100 and good["mqtt"] >= 10, good

    # --- each worker owns its buildings: bindings add up, readings add up, nothing crosses over -------------------
    check = CliRunner().invoke(app, ["rules", "check", "--site", str(sample_site_path), "--json"])
    whole_site_bindings = json.loads(check.stdout)["bindings"]
    assert sum(s["bindings"] for _, s in results.values()) == whole_site_bindings
    for w, (code, s) in results.items():
        assert code == 0, workers[w].err()[-3000:]
        mine = sum(n for b, n in per_building.items() if b in WORKERS[w])
        assert s["received"] == s["evaluated"] == mine, (w, s, mine)
        assert s["foreign"] == 0 and s["malformed"] == 0, s
    assert sum(s["received"] for _, s in results.values()) == len(published)

    # --- alarms: each worker records only its own buildings, each injected leak is one alarm in one worker -------
    from rules.alarms import AlarmBook

    keys: dict[str, set[tuple[str, str, str]]] = {}
    for w in WORKERS:
        book = AlarmBook(f"sqlite:///{tmp_path / f'rules-{w}' / 'records.db'}")
        try:
            rows = book.list(limit=10_000)
        finally:
            book.close()
        assert {a.building for a in rows} <= set(WORKERS[w]), (w, [(a.rule, a.building) for a in rows])
        keys[w] = {(a.rule, a.building, a.subject) for a in rows}
        assert len(keys[w]) == len(rows), f"worker {w} opened an alarm twice"
    assert not keys["a"] & keys["b"]
    for w, target in LEAKS.items():
        building, point = target.split("/")
        other = "b" if w == "a" else "a"
        assert ("s-water-leak", building, point) in keys[w], (w, sorted(keys[w]))
        assert not any(k[1] == building for k in keys[other])
        assert len(_raised(tap, target)) == 1, tap.alarms
    print(json.dumps({"published": len(published), "while_ingest_down": while_down,
                      "per_building": dict(per_building), "stored": stored_count,
                      "collect_s": round(collected_s, 1), "workers": {w: s for w, (_, s) in results.items()},
                      "alarms": {w: len(k) for w, k in keys.items()}}))
