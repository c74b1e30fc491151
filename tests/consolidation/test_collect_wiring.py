"""`retrofit collect` wiring: hourly rollups on an InfluxDB without continuous queries; the store it opens is closed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from retrofit.cmd_collect import downsampling_for, store_sink
from retrofit.devservers import ServerProcess
from retrofit.settings import load_settings
from telemetry.influx import InfluxStore
from telemetry.reading import Quality, Reading
from telemetry.store import StoreError


def _rollups(store: InfluxStore) -> list[list[object]]:
    res = store.query(f'SELECT "mean", "count" FROM "{store.database}"."downsampled"."readings_1h"')
    return [row for s in res[0].get("series", []) for row in s.get("values", [])]


def test_downsample_job_runs_when_the_server_has_no_continuous_queries(influxd: ServerProcess) -> None:
    store = InfluxStore(f"http://127.0.0.1:{influxd.port}", database=f"wiring_{uuid.uuid4().hex[:8]}")
    try:
        now = time.time()
        last_hour = now - now % 3600 - 3600
        store.write([Reading("b1/kwh", last_hour + 60 * i, 10.0 + i, Quality.GOOD) for i in range(5)])
        assert downsampling_for(store) is None  # InfluxDB 1.x: its continuous query does the rollups
        store.continuous_queries = False  # what 2.x/3.x report behind the v1 API
        job = downsampling_for(store, every_s=3600)
        assert job is not None and job.is_alive()
        try:
            deadline = time.monotonic() + 30
            while not _rollups(store) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            job.stop()
            job.join(timeout=10)
        assert not job.is_alive()
        assert [(r[1], r[2]) for r in _rollups(store)] == [(12.0, 5)]
    finally:
        store.close()


def test_no_job_for_the_embedded_store_and_the_store_is_closed_with_the_sink(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETROFIT_INFLUX_URL", raising=False)
    sink = store_sink(load_settings(data_dir=tmp_path))
    store = sink.target.store
    assert downsampling_for(store) is None
    sink.write([Reading("b1/t", time.time(), 21.0, Quality.GOOD)])
    sink.close()
    with pytest.raises(StoreError, match="closed"):  # the buffer closed the store it opened
        store.latest(points=["b1/t"])
