"""Fixtures for the dashboard tests: the sample district (buildings/sites/yuzhong) with a week of simulated
15-minute history from the simulator's history generator in an embedded store, the district's programme
imported into the records database, and users of every role.

alice owns a share of jiefangbei-tower only (yuxin-property); bob of chaotianmen-harbour only (harbour-hotels).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildings.records.base import make_engine
from buildings.site import load_site
from dashboard.auth import add_user
from tests.seed import seed_data_dir

PASSWORD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parents[2]
HISTORY_DAYS = 4


@dataclass
class DashEnv:
    root: Path
    site: Path
    data_dir: Path
    records_url: str
    store_path: Path


@pytest.fixture(scope="session")
def dash_data(tmp_path_factory: pytest.TempPathFactory, sample_site_path: Path) -> DashEnv:
    root = tmp_path_factory.mktemp("dash")
    data_dir = root / "data"
    data_dir.mkdir()
    url, _end = seed_data_dir(data_dir, sample_site_path, HISTORY_DAYS)
    engine = make_engine(url)
    add_user(engine, "alice", PASSWORD, "owner", "yuxin-property")
    add_user(engine, "bob", PASSWORD, "owner", "harbour-hotels")
    add_user(engine, "dora", PASSWORD, "district")
    add_user(engine, "tom", PASSWORD, "technician")
    engine.dispose()
    return DashEnv(root, sample_site_path, data_dir, url, data_dir / "telemetry.db")


@pytest.fixture()
def dash_env(dash_data: DashEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DashEnv]:
    """RETROFIT_* settings pointing the app at the fixture district; run from a dir with no retrofit.toml."""
    for k in ("RETROFIT_CONFIG", "RETROFIT_INFLUX_URL", "RETROFIT_RECORDS_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETROFIT_SITE", str(dash_data.site))
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(dash_data.data_dir))
    yield dash_data


def foreign_to(building_id: str) -> tuple[str, ...]:
    """Ids and names (zh, en) of every sample building other than building_id."""
    site = load_site(str(ROOT / "buildings" / "sites" / "yuzhong"))
    return tuple(x for b in site.buildings if b.id != building_id for x in (b.id, b.name.zh, b.name.en))


APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
FOREIGN = foreign_to("jiefangbei-tower")  # what alice must never see


@pytest.fixture()
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload the app hands to a download button (a spy on Streamlit's real media storage)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: list[bytes] = []
    real = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        seen.append(path_or_data if isinstance(path_or_data, bytes) else str(path_or_data).encode())
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return seen


def sign_in(username: str, password: str = PASSWORD, query: dict[str, str] | None = None):
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


def page_text(at) -> str:
    """Everything the page rendered: every element's proto as UTF-8 text plus every dataframe as CSV."""
    from google.protobuf import text_format

    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(text_format.MessageToString(proto, as_utf8=True))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    for df in at.dataframe:
        out.append(df.value.to_csv())
    return "\n".join(out)
