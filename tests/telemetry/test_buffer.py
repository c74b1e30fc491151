"""The durable buffer: fsync'd FIFO, drains in order, survives restarts and torn tails, dead-letters 400s."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from retrofit.devservers import ServerProcess
from telemetry.buffer import BufferFull, BufferState, DurableBuffer, buffer_status
from telemetry.embedded import EmbeddedStore
from telemetry.influx import InfluxStore
from telemetry.reading import Quality, Reading
from telemetry.store import Store, StoreError
from tests.telemetry.helpers import T0


def batch(i: int, n: int = 100, point: str = "b/p") -> list[Reading]:
    """Batch i: n readings of one point at T0 + i*n + k seconds, value = the same number."""
    return [Reading(point, T0 + i * n + k, float(i * n + k)) for k in range(n)]


class RecordingStore(EmbeddedStore):
    """A real embedded store that also notes the first timestamp of every batch it is given."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.batches: list[float] = []

    def write_rows(self, rows):  # type: ignore[no-untyped-def]
        self.batches.append(rows[0][1])
        super().write_rows(rows)


def test_appends_reach_the_store_in_order(store: Store, tmp_path: Path) -> None:
    buf = DurableBuffer(tmp_path / "buf", store, segment_bytes=8000, drain_batch=250)
    for i in range(30):
        buf.append(batch(i))
    buf.append([Reading("b/s", T0, "text"), Reading("b/s", T0 + 1, None, Quality.COMM_FAILURE)])
    assert buf.flush(timeout=30)
    assert store.count(["b/p"]) == 3000
    assert store.raw("b/s", T0, T0 + 10)[1] == Reading("b/s", T0 + 1, None, Quality.COMM_FAILURE)
    st = buf.status()
    assert (st.depth_readings, st.depth_batches, st.dead_letters, st.state) == (0, 0, 0, "ok")
    assert st.delivered_readings == 3002
    assert buf.close()
    assert len(list((tmp_path / "buf").glob("seg-*.log"))) <= 1  # confirmed segments are deleted


def test_what_is_on_disk_goes_first_after_a_restart(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "t.db")
    buf = DurableBuffer(tmp_path / "buf", store, start=False)
    for i in range(5):
        buf.append(batch(i))
    assert not buf.close(drain_timeout=0)  # never started: all 5 batches stay on disk
    st = buffer_status(tmp_path / "buf")
    assert (st.depth_readings, st.depth_batches) == (500, 5)
    again = DurableBuffer(tmp_path / "buf", store, start=False, drain_batch=100)
    assert again.depth == 500
    again.append(batch(99))
    again.start()
    assert again.flush(timeout=30)
    assert store.batches == [T0 + i * 100 for i in [0, 1, 2, 3, 4, 99]]
    assert again.close()
    assert buffer_status(tmp_path / "buf").depth_readings == 0


def test_torn_tail_record_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EmbeddedStore(tmp_path / "t.db")
    buf = DurableBuffer(tmp_path / "buf", store, start=False)
    buf.append(batch(0))
    buf.append(batch(1))
    buf.close(drain_timeout=0)
    seg = sorted((tmp_path / "buf").glob("seg-*.log"))[-1]
    whole = seg.read_bytes()
    with open(seg, "ab") as f:  # a third record whose write was cut short by a crash
        f.write(whole[: len(whole) // 2 - 10])
    caplog.set_level(logging.WARNING)
    again = DurableBuffer(tmp_path / "buf", store)
    assert "unfinished record" in caplog.text
    assert again.flush(timeout=30)
    assert store.count() == 200
    assert seg.stat().st_size in (0, len(whole)) or not seg.exists()
    again.close()


def test_rejected_batch_goes_to_dead_letters_with_the_server_message(influxd: ServerProcess, tmp_path: Path) -> None:
    store = InfluxStore(f"http://127.0.0.1:{influxd.port}", database="tel_buf_dead")
    # InfluxDB types a field per shard (7 days here): make "value" an integer in a shard a month later
    later = T0 + 30 * 86400
    store.write_lines(f'readings,building=b,point=b/int value=1i,quality="good" {int(later * 1000)}')
    buf = DurableBuffer(tmp_path / "buf", store, start=False, drain_batch=10_000)
    buf.append(batch(0))
    buf.append([Reading("b/int", later + 5, 2.5)])  # float into an integer field: HTTP 400
    buf.append(batch(1))
    buf.start()
    assert buf.flush(timeout=30)
    assert buf.dead_letters == 1 and buf.depth == 0
    assert store.count(["b/p"]) == 200
    (dead,) = (tmp_path / "buf" / "dead-letter").glob("*.json")
    body = json.loads(dead.read_text())
    assert "field type conflict" in body["error"] and "HTTP 400" in body["error"]
    assert body["rows"] == [["b/int", later + 5, 2.5, "good"]]
    assert buffer_status(tmp_path / "buf").dead_letters == 1
    buf.close()
    store.close()


def test_nearly_full_then_full_then_drains(influxd_private: ServerProcess, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    store = InfluxStore(f"http://127.0.0.1:{influxd_private.port}", database="buf_full", timeout_s=2)
    states: list[str] = []
    buf = DurableBuffer(tmp_path / "buf", store, max_bytes=20_000, retry_initial_s=0.05, retry_max_s=0.3,
                        on_state=lambda s, st: states.append(s.value))
    influxd_private.stop(remove=False)
    caplog.set_level(logging.WARNING)
    appended = 0
    with pytest.raises(BufferFull, match="not stored.*RETROFIT_BUFFER_MAX_MB"):
        for i in range(100):
            buf.append(batch(i, n=50))
            appended += 1
    assert buf.state is BufferState.FULL
    assert states[:2] == ["nearly-full", "full"]
    assert "nearly-full" in caplog.text and "not reachable" in caplog.text
    assert buf.status().last_error and "not reachable" in buf.status().last_error
    influxd_private.start()
    assert buf.flush(timeout=60)
    assert buf.state is BufferState.OK and states[-1] == "ok"
    assert store.count() == appended * 50
    buf.close()
    store.close()


def test_one_process_owns_a_buffer_directory(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "t.db")
    buf = DurableBuffer(tmp_path / "buf", store)
    with pytest.raises(StoreError, match="in use by another process"):
        DurableBuffer(tmp_path / "buf", store)
    buf.close()
    DurableBuffer(tmp_path / "buf", store).close()


def test_appended_data_is_on_disk_before_append_returns(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "t.db")
    buf = DurableBuffer(tmp_path / "buf", store, start=False)
    buf.append(batch(7, n=3))
    # another reader (as after a crash) sees the whole record already
    st = buffer_status(tmp_path / "buf")
    assert (st.depth_readings, st.depth_batches) == (3, 1)
    assert os.path.getsize(sorted((tmp_path / "buf").glob("seg-*.log"))[0]) == st.pending_bytes
    buf.close(drain_timeout=0)
