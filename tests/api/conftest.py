"""Fixtures for the API tests: the sample district with two days of simulated 15-minute history in an embedded
store, the district's programme and some alarms in the records database, contacts of individual owners, tokens
of every kind, and the API served by a real uvicorn on a free loopback port.

Owners: yuxin-property holds jiefangbei-tower only; harbour-hotels chaotianmen-harbour only; f03-individuals is
a row of 14 individual owners in huaxin-building.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from buildings.records.base import make_engine
from buildings.site import load_site
from tests.seed import seed_data_dir

ROOT = Path(__file__).resolve().parents[2]
HISTORY_DAYS = 2
CONTACTS = ("owner_id,contact_name,id_number,phone\n"
            "f03-individuals,王小明,500103198001011234,13812345678\n"
            "f04-08-individuals,欧阳娜娜,50010319900202567X,13987654321\n")
PERSONAL = ("王小明", "500103198001011234", "13812345678", "欧阳娜娜", "50010319900202567X", "13987654321")


@dataclass
class ApiEnv:
    site_path: Path
    data_dir: Path
    records_url: str
    store_path: Path
    end: float
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def add_tokens(url: str, env: ApiEnv) -> None:
    from api.tokens import create_token, revoke_token

    engine = make_engine(url)
    specs = {
        "district": dict(role="district"), "district_pii": dict(role="district", pii=True),
        "yuxin": dict(role="owner", owner_id="yuxin-property"),
        "harbour": dict(role="owner", owner_id="harbour-hotels"),
        "f03": dict(role="owner", owner_id="f03-individuals"),
        "tech": dict(role="technician"), "slow": dict(role="district", rate_per_min=5),
        "revoked": dict(role="district"), "fuzz": dict(role="district", rate_per_min=100_000),
    }
    for name, kw in specs.items():
        rec, text = create_token(engine, name, days=30, **kw)  # type: ignore[arg-type]
        env.tokens[name], env.ids[name] = text, rec.id
    revoke_token(engine, env.ids["revoked"])
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    rec, text = create_token(engine, "expired", "district", days=1, now=past)
    env.tokens["expired"], env.ids["expired"] = text, rec.id
    engine.dispose()


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory, sample_site_path: Path) -> ApiEnv:
    """The seeded data directory (read-only for tests: copy it with ``fresh_env`` to change anything)."""
    from api.pii import import_contacts

    data_dir = tmp_path_factory.mktemp("api") / "data"
    data_dir.mkdir()
    url, end = seed_data_dir(data_dir, sample_site_path, HISTORY_DAYS)
    engine = make_engine(url)
    from dashboard.auth import add_user

    add_user(engine, "dora", "correct-horse-battery", "district")
    add_user(engine, "oscar", "correct-horse-battery", "owner", "yuxin-property")
    import_contacts(engine, CONTACTS)
    engine.dispose()
    env = ApiEnv(sample_site_path, data_dir, url, data_dir / "telemetry.db", end)
    add_tokens(url, env)
    _checkpoint(url)
    return env


def _checkpoint(url: str) -> None:
    """Fold the WAL into the database file so the data directory can be copied."""
    engine = make_engine(url)
    with engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


@pytest.fixture()
def fresh_env(api_template: ApiEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ApiEnv:
    """A private copy of the seeded data directory, with RETROFIT_* pointing the commands at it."""
    data_dir = tmp_path / "data"
    shutil.copytree(api_template.data_dir, data_dir)
    env = ApiEnv(api_template.site_path, data_dir, f"sqlite:///{data_dir / 'records.db'}",
                 data_dir / "telemetry.db", api_template.end, dict(api_template.tokens), dict(api_template.ids))
    for k in ("RETROFIT_CONFIG", "RETROFIT_INFLUX_URL", "RETROFIT_RECORDS_URL", "RETROFIT_API_TOKEN",
              "RETROFIT_SIGNING_KEY", "RETROFIT_KEY_PASSPHRASE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETROFIT_SITE", str(env.site_path))
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(data_dir))
    return env


@dataclass
class Served:
    base: str
    env: ApiEnv
    store: object
    engine: object

    def get(self, path: str, token: str | None = "district", **params: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.env.tokens.get(token, token)}"} if token else {}
        return requests.get(self.base + path, headers=headers, params=params, timeout=30)  # type: ignore[arg-type]


@contextmanager
def serve(app: object) -> Iterator[str]:
    """Serve an ASGI app on a real uvicorn on a free loopback port; yields its base URL."""
    import uvicorn

    from retrofit.devservers import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def served(api_template: ApiEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API on a real uvicorn (free port) over a private copy of the seeded data."""
    from api.app import create_app
    from telemetry.embedded import EmbeddedStore

    data_dir = tmp_path_factory.mktemp("served") / "data"
    shutil.copytree(api_template.data_dir, data_dir)
    env = ApiEnv(api_template.site_path, data_dir, f"sqlite:///{data_dir / 'records.db'}",
                 data_dir / "telemetry.db", api_template.end, dict(api_template.tokens), dict(api_template.ids))
    store = EmbeddedStore(env.store_path, readonly=True)
    engine = make_engine(env.records_url)
    with serve(create_app(load_site(str(env.site_path)), engine, store)) as base:
        yield Served(base, env, store, engine)
    store.close()
    engine.dispose()
