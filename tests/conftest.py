"""Shared fixtures: real influxd and mosquitto processes on free loopback ports, the sample site."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrofit.devservers import ServerProcess, start_influxd, start_mosquitto

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
