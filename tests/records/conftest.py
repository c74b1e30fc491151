"""Fixtures for the programme tests: a records database migrated by Alembic, loaded with the sample district."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from buildings.records import make_engine, session_factory
from buildings.records.migrate import upgrade
from buildings.records.program import import_all
from buildings.site import Site, load_site
from buildings.subsidy.policy import Policy, load_policies

ROOT = Path(__file__).resolve().parents[2]
PROGRAMME = ROOT / "buildings" / "program" / "yuzhong.yaml"
AS_OF = dt.date(2026, 11, 26)


@pytest.fixture(scope="session")
def sample_site() -> Site:
    return load_site(str(ROOT / "buildings" / "sites" / "yuzhong"))


@pytest.fixture(scope="session")
def policies() -> dict[str, Policy]:
    return load_policies()


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    """The test's records database (empty and migrated, unless ``loaded`` copied the sample into it first)."""
    url = f"sqlite:///{tmp_path / 'records.db'}"
    if not (tmp_path / "records.db").exists():
        upgrade(url)
    return url


@pytest.fixture()
def sf(db_url: str) -> sessionmaker:
    return session_factory(make_engine(db_url))


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory, sample_site: Site, policies: dict[str, Policy]) -> Path:
    """The sample programme imported once (through Alembic and import_all); tests get a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "records.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        import_all(s, sample_site, PROGRAMME, policies, "test")
    with engine.connect() as conn:  # fold the WAL into the file so a plain copy has everything
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture()
def loaded(template_db: Path, tmp_path: Path) -> sessionmaker:
    """A private copy of the loaded sample programme; ``db_url`` points at the same file."""
    shutil.copy(template_db, tmp_path / "records.db")
    return session_factory(make_engine(f"sqlite:///{tmp_path / 'records.db'}"))


@pytest.fixture()
def session(loaded: sessionmaker) -> Iterator[Session]:
    with loaded() as s:
        yield s
