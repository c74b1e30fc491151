"""Embedded (SQLite WAL) store specifics: readers in other processes, write rate, open_store defaults."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from retrofit.settings import Settings
from telemetry import open_store
from telemetry.embedded import EmbeddedStore
from telemetry.reading import Reading
from telemetry.store import StoreRejected, StoreUnavailable

ROOT = Path(__file__).resolve().parents[2]


def test_open_store_defaults_to_embedded(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path / "data"))
    assert isinstance(store, EmbeddedStore)
    assert store.path == tmp_path / "data" / "telemetry.db"
    store.write([Reading("b/p", 1.0, 2.0)])
    store.close()
    ro = open_store(Settings(data_dir=tmp_path / "data"), readonly=True)
    assert ro.count() == 1
    with pytest.raises(StoreRejected):
        ro.write([Reading("b/p", 2.0, 2.0)])
    ro.close()


def test_readonly_on_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist yet"):
        EmbeddedStore(tmp_path / "nope.db", readonly=True)


def test_reader_processes_see_commits_while_one_writer_writes(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = EmbeddedStore(db)
    store.write([Reading("b/p", 0.0, 0.0)])
    reader = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from telemetry.embedded import EmbeddedStore
        s = EmbeddedStore({str(db)!r}, readonly=True)
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 20000 and time.monotonic() < deadline:
            seen = s.count()
            time.sleep(0.01)
        print(seen)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", reader], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    for batch in range(20):
        store.write([Reading("b/p", 1.0 + batch * 1000 + k, float(k)) for k in range(1000)])
    outs = [p.communicate(timeout=40)[0].strip() for p in procs]
    assert all(int(o) >= 20000 for o in outs), outs
    store.close()


def test_sustained_write_rate(tmp_path: Path) -> None:
    """The issue asks for 50,000 readings/s; bench/ingest.py measures it, here with slack for a busy CPU."""
    store = EmbeddedStore(tmp_path / "rate.db")
    batches = [[Reading(f"b/p{i % 100}", 1e9 + b * 50 + i // 100, float(i)) for i in range(5000)] for b in range(20)]
    t = time.perf_counter()
    for batch in batches:
        store.write(batch)
    rate = 100_000 / (time.perf_counter() - t)
    assert store.count() == 100_000
    assert rate > 25_000, f"{rate:.0f} readings/s"
    store.close()
