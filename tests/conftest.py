"""Shared fixtures: real influxd, mosquitto and PostgreSQL processes on free loopback ports, the sample site, and
records databases of both kinds (SQLite and PostgreSQL) for the records suites."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrofit.devservers import PostgresServer, ServerProcess, start_influxd, start_mosquitto, start_postgres
from tests.recordsdb import BACKENDS, RecordsDatabases

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SITE = ROOT / "buildings" / "sites" / "yuzhong"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("RETROFIT_RUN_SLOW"):
        return
    skip = pytest.mark.skip(reason="long soak test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real InfluxDB 1.x for the whole session (tests use their own database names)."""
    server = start_influxd(tmp_path_factory.mktemp("influxd"))
    yield server
    server.stop()


@pytest.fixture()
def influxd_private(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real InfluxDB only this test uses (for stop/restart tests)."""
    server = start_influxd(tmp_path / "influxd")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real Mosquitto broker for the whole session."""
    server = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield server
    server.stop()


@pytest.fixture()
def mosquitto_private(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real Mosquitto only this test uses (for restart tests)."""
    d = tmp_path / "mosquitto"
    d.mkdir()
    server = start_mosquitto(d)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sample_site_path() -> Path:
    return SAMPLE_SITE


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole session (initdb in a temp dir, a free loopback port; tests get
    their own databases in it through ``records_dbs``)."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture()
def records_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordsDatabases]:
    dbs = RecordsDatabases(request, tmp_path)
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=BACKENDS)
def records_backend(request: pytest.FixtureRequest) -> str:
    """Each records test runs once per database: "sqlite" and "postgresql"."""
    return request.param


@pytest.fixture()
def records_url(records_backend: str, records_dbs: RecordsDatabases) -> str:
    """A new, empty (not migrated) records database of the test's kind."""
    return records_dbs.new(records_backend)
