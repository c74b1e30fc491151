"""Fixtures for the telemetry tests: the same suite runs against the embedded store and a real influxd."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrofit.devservers import ServerProcess
from telemetry.store import Store

_db_numbers = itertools.count(1)
STORE_KINDS = ["embedded", "influx"]


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **kwargs: object) -> Store:
    """A fresh, empty store of the given kind (a new database on the session influxd for 'influx')."""
    if kind == "embedded":
        from telemetry.embedded import EmbeddedStore

        return EmbeddedStore(tmp_path / "telemetry.db")
    from telemetry.influx import InfluxStore

    server: ServerProcess = request.getfixturevalue("influxd")
    return InfluxStore(f"http://127.0.0.1:{server.port}", database=f"tel_store_{next(_db_numbers)}", **kwargs)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store test runs once per implementation."""
    s = make_store(request.param, tmp_path, request)
    yield s
    s.close()
