"""Helpers for the collector tests: small site files written to tmp dirs and loaded by the real loader, and a
dict-backed ValueSource (our own simulator interface) for the real protocol servers in simulators/servers."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from buildings.site import Site, load_site
from retrofit.devservers import ServerProcess, start_mosquitto
from simulators.values import DeviceMode

OWNERS = [{"owner": "o1", "name": "Owner", "area_m2": 100}]


def building_doc(bid: str, devices: list[dict[str, Any]], points: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "building": {"id": bid, "name": {"zh": "测试楼", "en": "Test"}, "address": "1 Test Rd", "year_built": 1998,
                     "gross_floor_area_m2": 10000, "use": "office", "owners": OWNERS},
        "devices": devices,
        "equipment": [{"id": "eq1", "name": "test equipment", "kind": "meter", "points": points}],
    }


def point(pid: str, source: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": pid, "brick": extra.pop("brick", "Air_Temperature_Sensor"),
            "unit": extra.pop("unit", "degC"), kind: source, **extra}


def write_site(path: Path, docs: Iterable[dict[str, Any]]) -> Site:
    path.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    for d in docs:
        with open(path / f"{d['building']['id']}.yaml", "w", encoding="utf-8") as fh:
            yaml.dump(d, fh)
    return load_site(str(path))


class DictValues:
    """A ValueSource from dicts: values by point key, modes by device key (tests flip them)."""

    def __init__(self, values: dict[str, float | str | None] | None = None, default: float | None = 1.0) -> None:
        self.values = dict(values or {})
        self.modes: dict[str, DeviceMode] = {}
        self.default = default

    def value(self, point_key: str) -> float | str | None:
        return self.values.get(point_key, self.default)

    def device_mode(self, device_key: str) -> DeviceMode:
        return self.modes.get(device_key, DeviceMode.OK)

    def now(self) -> float:
        return time.time()


@pytest.fixture()
def values() -> DictValues:
    return DictValues()


@pytest.fixture()
def mosquitto_persistent() -> Iterator[ServerProcess]:
    """A private Mosquitto whose persistence really works across a restart.

    Mosquitto started as root drops to user ``mosquitto``, which cannot enter pytest's 0700 tmp dirs, so a broker
    there silently loses its sessions on restart. A dir under the system temp dir is reachable.
    """
    server = start_mosquitto(Path(tempfile.mkdtemp(prefix="retrofit-mqtt-collectors-")))
    yield server
    server.stop()
