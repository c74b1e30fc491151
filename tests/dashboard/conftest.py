"""Fixtures for the dashboard tests: a small district (three buildings, owners A and B, one shared with C),
an embedded store with a week of 15-minute history written through the Store interface, users of every role.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildings.records.base import make_engine
from dashboard.auth import add_user
from telemetry.embedded import EmbeddedStore
from telemetry.reading import Quality, Reading

PASSWORD = "correct-horse-battery"
BUILDINGS = {
    # id: (zh, en, owners [(owner, area)], lat, lon, area)
    "alpha-tower": ("阿尔法大厦", "Alpha Tower", [("owner-a", 20000)], 29.557, 106.577, 24000),
    "beta-plaza": ("贝塔广场", "Beta Plaza", [("owner-b", 15000)], 29.553, 106.571, 18000),
    "gamma-court": ("伽马商厦", "Gamma Court", [("owner-b", 5000), ("owner-c", 4000)], 29.560, 106.569, 10000),
}


def building_yaml(bid: str, zh: str, en: str, owners: list[tuple[str, float]], lat: float, lon: float,
                  area: float, port: int) -> str:
    owner_rows = "\n".join(f"    - {{owner: {o}, name: {o} Co., kind: enterprise, area_m2: {a}}}" for o, a in owners)
    return f"""building:
  id: {bid}
  name: {{zh: {zh}, en: {en}}}
  address: Yuzhong {en}
  year_built: 1998
  gross_floor_area_m2: {area}
  use: office
  lat: {lat}
  lon: {lon}
  owners:
{owner_rows}
devices:
  - {{id: meter-gw, protocol: modbus, port: {port}, unit_id: 1, poll_interval_s: 60}}
  - {{id: ahu-ctl, protocol: bacnet, port: {port + 1}, device_instance: {port}, poll_interval_s: 60}}
equipment:
  - id: main-meter
    name: Main meter
    name_zh: 总表
    kind: meter
    points:
      - {{id: total-kwh, name: Total energy, name_zh: 总电量, brick: Electric_Energy_Sensor, unit: kWh,
          counter: true, subitem: total, modbus: {{device: meter-gw, address: 0}}}}
      - {{id: total-kw, name: Total power, name_zh: 总功率, brick: Electric_Power_Sensor, unit: kW,
          modbus: {{device: meter-gw, address: 2}}}}
  - id: sub-meters
    name: Sub-item meters
    name_zh: 分项表
    kind: meter
    points:
      - {{id: lighting-kwh, name: Lighting energy, name_zh: 照明电量, brick: Electric_Energy_Sensor, unit: kWh,
          counter: true, subitem: lighting_sockets, modbus: {{device: meter-gw, address: 4}}}}
      - {{id: hvac-kwh, name: HVAC energy, name_zh: 空调电量, brick: Electric_Energy_Sensor, unit: kWh,
          counter: true, subitem: hvac, modbus: {{device: meter-gw, address: 6}}}}
  - id: ahu-1
    name: AHU-1
    name_zh: 1号空调箱
    kind: ahu
    points:
      - {{id: zone-temp, name: Zone temperature, name_zh: 区域温度, brick: Zone_Air_Temperature_Sensor, unit: degC,
          bacnet: {{device: ahu-ctl, object_type: analog-input, instance: 1}}}}
"""


def write_site(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (bid, (zh, en, owners, lat, lon, area)) in enumerate(BUILDINGS.items()):
        (folder / f"{bid}.yaml").write_text(building_yaml(bid, zh, en, owners, lat, lon, area, 15100 + 10 * i),
                                            encoding="utf-8")
    return folder


def history(days: int = 8, end: float | None = None) -> list[Reading]:
    """15-minute readings: power follows office hours, counters integrate it, zone temperature drifts."""
    end = end or (time.time() // 900 * 900)
    start = end - days * 86400
    out: list[Reading] = []
    for n, bid in enumerate(BUILDINGS):
        scale = 1.0 + 0.5 * n
        totals = {"total-kwh": 1000.0, "lighting-kwh": 300.0, "hvac-kwh": 500.0}
        ts = start
        while ts < end:
            local_h = ((ts + 8 * 3600) % 86400) / 3600
            wd = int((ts + 8 * 3600) // 86400 + 3) % 7  # 0 = Monday
            busy = 8 <= local_h < 19 and wd < 5
            kw = scale * (400.0 if busy else 120.0)
            totals["lighting-kwh"] += kw * 0.25 * 0.3
            totals["hvac-kwh"] += kw * 0.25 * 0.5
            totals["total-kwh"] += kw * 0.25
            out.append(Reading(f"{bid}/total-kw", ts, kw))
            for p, v in totals.items():
                out.append(Reading(f"{bid}/{p}", ts, round(v, 3)))
            out.append(Reading(f"{bid}/zone-temp", ts, 22.0 + 2 * math.sin(ts / 7200)))
            ts += 900
    out.append(Reading("beta-plaza/zone-temp", end, None, Quality.COMM_FAILURE))
    return out


@dataclass
class DashEnv:
    root: Path
    site: Path
    data_dir: Path
    records_url: str
    store_path: Path


@pytest.fixture(scope="session")
def dash_data(tmp_path_factory: pytest.TempPathFactory) -> DashEnv:
    root = tmp_path_factory.mktemp("dash")
    site = write_site(root / "site")
    data_dir = root / "data"
    data_dir.mkdir()
    store = EmbeddedStore(data_dir / "telemetry.db")
    store.write(history())
    store.close()
    url = f"sqlite:///{data_dir / 'records.db'}"
    engine = make_engine(url)
    add_user(engine, "alice", PASSWORD, "owner", "owner-a")
    add_user(engine, "bob", PASSWORD, "owner", "owner-b")
    add_user(engine, "dora", PASSWORD, "district")
    add_user(engine, "tom", PASSWORD, "technician")
    engine.dispose()
    return DashEnv(root, site, data_dir, url, data_dir / "telemetry.db")


@pytest.fixture()
def dash_env(dash_data: DashEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DashEnv]:
    """RETROFIT_* settings pointing the app at the fixture district; run from a dir with no retrofit.toml."""
    for k in ("RETROFIT_CONFIG", "RETROFIT_INFLUX_URL", "RETROFIT_RECORDS_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETROFIT_SITE", str(dash_data.site))
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(dash_data.data_dir))
    yield dash_data


APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
FOREIGN = ("beta-plaza", "gamma-court", "Beta Plaza", "贝塔广场", "Gamma Court", "伽马商厦", "owner-b", "owner-c")


@pytest.fixture()
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload the app hands to a download button (a spy on Streamlit's real media storage)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: list[bytes] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):  # noqa: ANN001, ANN202
        seen.append(path_or_data if isinstance(path_or_data, bytes) else str(path_or_data).encode())
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return seen


def sign_in(username: str, password: str = PASSWORD, query: dict[str, str] | None = None):  # noqa: ANN201
    """An AppTest of the dashboard, signed in through the real form."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    at.text_input(key="login_user").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    return at.run()


def page_text(at) -> str:  # noqa: ANN001
    """Everything the page rendered: every element's proto as UTF-8 text plus every dataframe as CSV."""
    from google.protobuf import text_format

    out: list[str] = []

    def walk(node) -> None:  # noqa: ANN001
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(text_format.MessageToString(proto, as_utf8=True))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    for df in at.dataframe:
        out.append(df.value.to_csv())
    return "\n".join(out)
