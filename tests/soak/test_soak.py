"""Soak and fault test (issue 9 item 4): the whole pipeline for the sample district survives its servers and
itself being restarted, loses nothing it acknowledged, raises alarms for the injected faults only, and keeps
its memory flat.

`retrofit simulate` (10x speed, free ports) and `retrofit collect` (rules in-process, InfluxDB through the
durable buffer, MQTT sensors) run as real processes against a private influxd and a private Mosquitto while,
one after another: InfluxDB is restarted, Mosquitto is restarted, one simulated device goes offline and comes
back, fast safety faults are injected, and the collector is killed with SIGKILL and started again.

The oracle for "acknowledged" is the durable buffer itself: a tap reads every complete, CRC-checked record the
collector fsync'd into DATA_DIR/buffer (the pipeline acknowledges a batch only after that append), and every
one of those readings must be in InfluxDB at the end. The status file's store-sink counter (readings the
buffer accepted) must agree with the tap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import psutil
import pytest
import requests

from buildings.site import Site, load_site
from retrofit.devservers import ServerProcess
from telemetry.buffer import HEADER, MAGIC
from tests.simsupport import log_tail, start_simulate, terminate

ROOT = Path(__file__).resolve().parents[2]
RETROFIT = [sys.executable, "-m", "retrofit.cli"]
DB = "soak"

# The device taken offline: 5 s poll interval, so the collector sees it offline within seconds.
OFFLINE_DEVICE = "chaotianmen-harbour/gas-panel"
# Faults that show at once at real time (a live fault starts at the current physics step): safety sensors trip.
FAST_FAULTS = [("water_leak", "huaxin-building/leak-b1pump-wet"), ("smoke", "huaxin-building/smoke-swr-alarm")]


# --- the buffer tap: what the collector acknowledged ---------------------------------------------------------


@dataclass
class BufferTap:
    """Reads every complete record appended to the buffer's segment files, as they grow (a background thread).

    A record counts only when its header, length and CRC are whole: the collector appends (and fsyncs) before
    it acknowledges, so a torn tail (killed mid-append) was never acknowledged and is not counted either.
    """

    directory: Path
    readings: dict[tuple[str, int], float | str | None] = field(default_factory=dict)
    rows: int = 0
    _offsets: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def scan(self) -> None:
        for seg in sorted(self.directory.glob("seg-*.log")):
            try:
                data = seg.read_bytes()
            except FileNotFoundError:
                continue  # confirmed and deleted between glob and read
            off = self._offsets.get(seg.name, 0)
            while off + HEADER.size <= len(data):
                magic, length, crc, count = HEADER.unpack_from(data, off)
                end = off + HEADER.size + length
                if magic != MAGIC or end > len(data):
                    break  # a record still being written (or a torn tail): read it on the next scan
                payload = data[off + HEADER.size:end]
                if zlib.crc32(payload) != crc:
                    break
                rows = msgpack.unpackb(payload)
                assert len(rows) == count, f"{seg.name}@{off}: header says {count} readings, payload has {len(rows)}"
                for point, ts, value, _quality in rows:
                    self.readings[(point, int(ts * 1000 + 0.5))] = value
                self.rows += count
                off = end
            self._offsets[seg.name] = off

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            self.scan()

    def start(self) -> BufferTap:
        self._thread = threading.Thread(target=self._run, name="buffer-tap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.scan()


# --- processes --------------------------------------------------------------------------------------------------




def start_collector(site_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*RETROFIT, "collect", "--site", str(site_dir), "--log-level", "WARNING"], cwd=ROOT,
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115


def fault(env: dict[str, str], control: Path, *args: str) -> str:
    out = subprocess.run([*RETROFIT, "simulate", "fault", *args, "--control-file", str(control)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def read_status(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "collector-status.json").read_text())
    except (OSError, ValueError):
        return None


def store_acks(status: dict | None) -> int:
    """Readings the buffer accepted in one collector run (the store sink's counter)."""
    if not status or not status.get("pipeline"):
        return 0
    return status["pipeline"]["sinks"]["store"]["readings"]


def recorded_alarms(data_dir: Path, since: float) -> list[dict]:
    """Alarms the collector's live rules recorded in DATA_DIR/records.db, raised at or after ``since``."""
    from sqlalchemy import select

    from buildings.records import make_engine, session_factory
    from rules.alarms import Alarm

    if not (data_dir / "records.db").exists():
        return []
    engine = make_engine(f"sqlite:///{data_dir / 'records.db'}")
    try:
        with session_factory(engine)() as s:
            return [a.as_dict() for a in s.scalars(select(Alarm).where(Alarm.raised_at >= since))]
    except Exception:  # noqa: BLE001 - the collector has not created the table yet
        return []
    finally:
        engine.dispose()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s")


class RssSampler:
    """Resident memory of one process, sampled every second (psutil) in a background thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.samples.append((time.monotonic() - self._t0, self.proc.memory_info().rss / 2**20))
            except psutil.Error:
                return

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join(3)
        return self.samples


def influx_readings(port: int) -> dict[tuple[str, int], float | None]:
    """Every (point, ms) -> value in the soak database, straight from InfluxDB's /query."""
    r = requests.post(f"http://127.0.0.1:{port}/query",
                      data={"db": DB, "q": 'SELECT "value", "quality" FROM "readings" GROUP BY "point"',
                            "epoch": "ms"}, timeout=60)
    r.raise_for_status()
    out: dict[tuple[str, int], float | None] = {}
    for res in r.json()["results"]:
        for series in res.get("series", []):
            point = series["tags"]["point"]
            for t, value, _q in series["values"]:
                out[(point, int(t))] = value
    return out


# --- the test -----------------------------------------------------------------------------------------------------


@pytest.fixture()
def stack(tmp_path: Path, influxd_private: ServerProcess, mosquitto_private: ServerProcess,
          sample_site_path: Path) -> Iterator[dict]:
    """Simulator running against the private Mosquitto; env for a collector writing to the private influxd."""
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "none.toml").write_text("")
    mqtt = f"mqtt://127.0.0.1:{mosquitto_private.port}"
    env = {**os.environ, "RETROFIT_DATA_DIR": str(data), "RETROFIT_MQTT_URL": mqtt,
           "RETROFIT_CONFIG": str(tmp_path / "none.toml"), "RETROFIT_INFLUX_URL": f"http://127.0.0.1:"
           f"{influxd_private.port}", "RETROFIT_INFLUX_DATABASE": DB, "PYTHONUNBUFFERED": "1"}
    for k in ("RETROFIT_RECORDS_URL", "RETROFIT_INFLUX_USERNAME", "RETROFIT_INFLUX_PASSWORD", "RETROFIT_INFLUX_TOKEN"):
        env.pop(k, None)
    sample = load_site(str(sample_site_path))
    control = tmp_path / "control.json"
    sim = start_simulate(sample_site_path, site=sample, env={**env, "RETROFIT_DATA_DIR": str(tmp_path / "sim")},
                         log=tmp_path / "simulate.log",
                         extra_args=["--speed", "10", "--mqtt-url", mqtt, "--control-file", str(control)])
    site = sim.site
    procs: list[subprocess.Popen] = [sim.proc]
    try:
        yield {"tmp": tmp_path, "data": data, "env": env, "control": control, "site": site,
               "site_dir": Path(site.write_yaml(tmp_path / "site")), "procs": procs, "influxd": influxd_private,
               "mosquitto": mosquitto_private}
    finally:
        for p in reversed(procs):  # collectors first, the simulator last
            terminate(p, 30)


def run_soak(stack: dict, phase_s: float, offline_s: float) -> None:
    """The scenario; phase_s real seconds between disturbances, the device offline for offline_s."""
    tmp, data, env, control = stack["tmp"], stack["data"], stack["env"], stack["control"]
    influxd: ServerProcess = stack["influxd"]
    mosquitto: ServerProcess = stack["mosquitto"]
    site: Site = stack["site"]
    tap = BufferTap(data / "buffer").start()
    log = tmp / "collect.log"
    t_start = time.time()
    collector = start_collector(stack["site_dir"], env, log)
    stack["procs"].append(collector)
    rss = RssSampler(collector.pid)
    runs: list[int] = []  # store acknowledgements of each collector run that ended
    try:
        wait_until(lambda: (s := read_status(data)) is not None and store_acks(s) > 0, 60,
                   f"the collector did not store readings; log: {log}")
        time.sleep(phase_s)

        influxd.restart()  # writes fail meanwhile; the buffer holds them and retries
        time.sleep(phase_s)

        mosquitto.restart()  # sensors and the collector's subscriptions reconnect
        time.sleep(phase_s)

        fault(env, control, "inject", "--kind", "device_offline", "--target", OFFLINE_DEVICE)
        for kind, target in FAST_FAULTS:
            fault(env, control, "inject", "--kind", kind, "--target", target)
        wait_until(lambda: (read_status(data) or {}).get("devices", {}).get(OFFLINE_DEVICE, {}).get("health")
                   == "offline", 60, f"{OFFLINE_DEVICE} was not seen offline")
        # the live rules raise a safety alarm within about 25 s of the sensor's report (10-s ticks, 15-s lateness)
        wait_until(lambda: {t for _, t in FAST_FAULTS} <= {f"{a['building']}/{a['subject']}" for a in
                                                           recorded_alarms(data, t_start - 60)
                                                           if a["family"] == "safety"},
                   60, f"no safety alarms for {FAST_FAULTS} while the collector ran; {log}")
        time.sleep(max(0.0, offline_s - 10))
        fault(env, control, "clear", "--target", OFFLINE_DEVICE)
        wait_until(lambda: (read_status(data) or {}).get("devices", {}).get(OFFLINE_DEVICE, {}).get("health")
                   == "ok", 90, f"{OFFLINE_DEVICE} did not come back")

        mem = rss.stop()
        runs.append(store_acks(read_status(data)))  # the status is at most 5 s old: a lower bound
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        (data / "collector-status.json").unlink(missing_ok=True)
        time.sleep(2)
        collector = start_collector(stack["site_dir"], env, log)
        stack["procs"].append(collector)
        wait_until(lambda: store_acks(read_status(data)) > 0, 60, f"the restarted collector stored nothing; {log}")
        time.sleep(phase_s)
        collector.send_signal(signal.SIGTERM)  # clean stop: it flushes the buffer into InfluxDB
        collector.wait(60)
        assert collector.returncode == 0, log.read_text()[-3000:]
        summary = json.loads(log.read_text().strip().splitlines()[-1])
        assert summary["devices"] == sum(d.protocol != "mqtt" for _, d in site.devices.values()), summary
        runs.append(store_acks(read_status(data)))
    finally:
        tap.stop()

    # 1. every acknowledged reading is in InfluxDB, with its value
    assert tap.rows >= sum(runs) > 1000, (tap.rows, runs)
    stored = influx_readings(influxd.port)
    missing = [k for k in tap.readings if k not in stored]
    assert not missing, f"{len(missing)} of {len(tap.readings)} acknowledged readings not in InfluxDB: {missing[:5]}"
    wrong = [k for k, v in tap.readings.items()
             if isinstance(v, float) and v == v and stored[k] is not None and abs(stored[k] - v) > 1e-9 * abs(v)]
    assert not wrong, f"values differ in InfluxDB: {wrong[:5]}"
    assert not list((data / "buffer" / "dead-letter").glob("*.json")), "batches were set aside as rejected"

    # 2. alarms for the injected faults and nothing else
    alarms = recorded_alarms(data, t_start - 60)
    allowed = {OFFLINE_DEVICE} | {t for _, t in FAST_FAULTS}
    for a in alarms:
        subject = f"{a['building']}/{a['subject']}"
        equipment = f"{a['building']}/{a['equipment']}"
        assert subject in allowed or equipment in allowed or _point_of(site, subject, allowed), (
            f"alarm not caused by an injected fault: {a['rule']} on {subject}: {a['message_en']}")
    for _, target in FAST_FAULTS:
        assert any(f"{a['building']}/{a['subject']}" == target and a["family"] == "safety" for a in alarms), (
            f"no safety alarm for the injected fault on {target}: {[(a['rule'], a['subject']) for a in alarms]}\n"
            f"collect.log:\n{log_tail(tmp / 'collect.log')}\nsimulate.log:\n{log_tail(tmp / 'simulate.log')}")

    if offline_s >= 240:  # sv-comm needs 3 min of failed polls: only the long version holds the device that long
        assert any(f"{a['building']}/{a['subject']}" == OFFLINE_DEVICE and a["rule"] == "sv-comm" for a in alarms), (
            f"no sv-comm alarm for {OFFLINE_DEVICE}: {[(a['rule'], a['subject']) for a in alarms]}")

    # 3. memory flat: after a warm-up, the collector's RSS does not keep growing
    after = [mb for t, mb in mem if t >= 20]
    assert len(after) >= 10, mem
    head = sorted(after[: len(after) // 3])[len(after) // 6]
    tail = max(after[-len(after) // 3:])
    assert tail - head < max(15.0, 0.1 * head), f"collector RSS grew from {head:.1f} to {tail:.1f} MB: {mem}"


def _point_of(site: Site, subject: str, allowed: set[str]) -> bool:
    """A point alarm whose point lives on an affected device (its readings came from the faulty device)."""
    ref = site.points.get(subject)
    return ref is not None and f"{ref.building.id}/{ref.device.id}" in allowed


def test_soak_restarts_kill_and_faults(stack: dict) -> None:
    """About two and a half minutes: each disturbance 12 s apart, the device offline about 20 s."""
    run_soak(stack, phase_s=12, offline_s=20)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_soak_long(stack: dict) -> None:
    """The long version (--run-slow): a minute between disturbances, the device offline for five minutes."""
    run_soak(stack, phase_s=60, offline_s=300)
