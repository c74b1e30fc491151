"""Fixtures for the programme tests: a records database migrated by Alembic, loaded with the sample district."""

from __future__ import annotations

import datetime as dt
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
    url = f"sqlite:///{tmp_path / 'records.db'}"
    upgrade(url)
    return url


@pytest.fixture()
def sf(db_url: str) -> sessionmaker:
    return session_factory(make_engine(db_url))


@pytest.fixture()
def loaded(sf: sessionmaker, sample_site: Site, policies: dict[str, Policy]) -> sessionmaker:
    with sf.begin() as s:
        import_all(s, sample_site, PROGRAMME, policies, "test")
    return sf


@pytest.fixture()
def session(loaded: sessionmaker) -> Iterator[Session]:
    with loaded() as s:
        yield s
