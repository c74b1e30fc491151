"""Fixtures for the protocol-server tests: a small ValueSource of our own and tiny site files in tmp dirs.

DictValues is not a mock of anything the product talks to: it is an implementation of our own ValueSource
interface (simulators/values.py), so the servers can be tested before and independently of the physics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from simulators.values import DeviceMode


class DictValues:
    """A ValueSource backed by dicts the test changes while the servers run."""

    def __init__(self, values: dict[str, float | str | None] | None = None) -> None:
        self.values: dict[str, float | str | None] = dict(values or {})
        self.modes: dict[str, DeviceMode] = {}
        self.calls = 0

    def value(self, point_key: str) -> float | str | None:
        self.calls += 1
        return self.values.get(point_key)

    def device_mode(self, device_key: str) -> DeviceMode:
        return self.modes.get(device_key, DeviceMode.OK)

    def now(self) -> float:
        return time.time()


BUILDING: dict[str, Any] = {
    "id": "b1", "name": {"zh": "测试楼", "en": "Test building"}, "address": "1 Test Rd", "year_built": 1998,
    "gross_floor_area_m2": 5000, "use": "office", "owners": [{"owner": "o1", "name": "Owner", "area_m2": 4000}],
}


def write_site(dir_: Path, devices: list[dict[str, Any]], points: list[dict[str, Any]],
               building: dict[str, Any] | None = None, name: str = "b1.yaml") -> Path:
    """Write one building file with one meter equipment holding the points; return the file's path."""
    doc = {"building": building or BUILDING, "devices": devices,
           "equipment": [{"id": "eq1", "name": "Equipment", "kind": "meter", "points": points}]}
    path = dir_ / name
    with path.open("w", encoding="utf-8") as fh:
        YAML(typ="safe", pure=True).dump(doc, fh)
    return path


@pytest.fixture()
def values() -> DictValues:
    return DictValues()


@pytest.fixture()
def anyio_backend() -> str:
    """Async tests here run on asyncio (pymodbus, bacpypes3 and paho's loop helpers are asyncio-only)."""
    return "asyncio"
