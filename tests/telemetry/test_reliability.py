"""Reliability against real processes: InfluxDB down for a minute under load, the writer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from retrofit.devservers import ServerProcess
from telemetry.buffer import DurableBuffer, buffer_status
from telemetry.influx import InfluxStore
from telemetry.reading import Reading

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_S = float(os.environ.get("RETROFIT_TEST_OUTAGE_S", "60"))  # the figure; shorten only to debug
RATE = 5000  # readings per second
POINTS = 50


def test_influxdb_down_for_a_minute_loses_and_duplicates_nothing(influxd_private: ServerProcess,
                                                                  tmp_path: Path) -> None:
    store = InfluxStore(f"http://127.0.0.1:{influxd_private.port}", database="outage", timeout_s=2)
    buf = DurableBuffer(tmp_path / "buf", store, retry_initial_s=0.1, retry_max_s=1.0)
    produced = 0
    stop = threading.Event()
    base = time.time() - 3600

    def produce() -> None:
        # 500 readings every 0.1 s on a fixed schedule = 5,000/s; point k gets one reading every 10 ms
        nonlocal produced
        nxt = time.monotonic()
        while not stop.is_set():
            batch = [Reading(f"b/p{s % POINTS}", base + (s // POINTS) * 0.01, float(s))
                     for s in range(produced, produced + RATE // 10)]
            buf.append(batch)
            produced += len(batch)
            nxt += 0.1
            time.sleep(max(0.0, nxt - time.monotonic()))

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(1.5)
        influxd_private.stop(remove=False)
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        backlog = buf.depth
        influxd_private.start()
        time.sleep(1.5)
    finally:
        stop.set()
        producer.join()
    assert backlog >= RATE * OUTAGE_S * 0.8, "readings kept arriving while InfluxDB was down"
    assert buf.flush(timeout=90), f"still {buf.depth} readings in the buffer"
    elapsed = time.monotonic() - down_at
    assert produced >= RATE * elapsed * 0.8, f"{produced} produced in {elapsed:.0f} s: the producer was held up"
    assert store.count() == produced
    res = store.query('SELECT sum("value") FROM "readings"')[0]["series"][0]["values"][0][1]
    assert res == produced * (produced - 1) / 2  # every value once, none changed
    assert buf.dead_letters == 0
    buf.close()
    store.close()


CHILD = textwrap.dedent("""
    import sys, time
    from telemetry.buffer import DurableBuffer
    from telemetry.influx import InfluxStore
    from telemetry.reading import Reading
    url, db, directory, base, i = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    buf = DurableBuffer(directory, InfluxStore(url, database=db))
    while True:
        buf.append([Reading("b/kill", base + i * 200 + k, float(i * 200 + k)) for k in range(200)])
        print(f"ACK {i}", flush=True)  # the pipeline acknowledges only after append() returned
        i += 1
        time.sleep(0.002)
""")


def test_sigkill_mid_stream_keeps_every_acknowledged_batch(influxd: ServerProcess, tmp_path: Path) -> None:
    url, db, base = f"http://127.0.0.1:{influxd.port}", "tel_sigkill", time.time() - 86400
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked: list[int] = []
    for first in (0, 1000):  # killed twice: the second run also replays what the first left behind
        argv = [sys.executable, "-c", CHILD, url, db, str(tmp_path / "buf"), str(base), str(first)]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert child.stdout is not None
        for n, line in enumerate(child.stdout):
            acked.append(int(line.split()[1]))
            if n >= 60:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    # a fresh process drains what is on disk
    store = InfluxStore(url, database=db)
    buf = DurableBuffer(tmp_path / "buf", store)
    assert buf.flush(timeout=60)
    buf.close()
    got = {round(r.ts - base): r.value for r in store.raw("b/kill", base - 1, base + 10**7)}
    missing = [i for i in acked if any(got.get(i * 200 + k) != float(i * 200 + k) for k in range(200))]
    assert not missing, f"acknowledged batches missing from the store: {missing[:10]}"
    assert len(acked) == 122
    assert buffer_status(tmp_path / "buf").depth_readings == 0
    store.close()
