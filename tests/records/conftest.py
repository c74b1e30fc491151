"""Fixtures for the programme tests: a records database migrated by Alembic, loaded with the sample district.

Every fixture that opens a records database runs each test twice, on SQLite and on PostgreSQL (the session's
private cluster): ``records_backend`` in tests/conftest.py is parametrised over both.
"""

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
from tests.recordsdb import RecordsDatabases, checkpoint, new_database, template_of

ROOT = Path(__file__).resolve().parents[2]
PROGRAMME = ROOT / "buildings" / "program" / "yuzhong.yaml"
AS_OF = dt.date(2026, 11, 26)


@pytest.fixture(scope="session")
def sample_site() -> Site:
    return load_site(str(ROOT / "buildings" / "sites" / "yuzhong"))


@pytest.fixture(scope="session")
def policies() -> dict[str, Policy]:
    return load_policies()


class Templates:
    """The sample programme imported once per kind of database (through Alembic and import_all); each test that
    wants it gets a copy (a file copy, or CREATE DATABASE ... TEMPLATE)."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path, site: Site, pols: dict[str, Policy]):
        self.request, self.folder, self.site, self.policies = request, folder, site, pols
        self.made: dict[str, str] = {}

    def get(self, kind: str) -> str:
        if kind not in self.made:
            server = self.request.getfixturevalue("postgres") if kind == "postgresql" else None
            url = new_database(kind, self.folder, server)
            upgrade(url)
            engine = make_engine(url)
            with session_factory(engine).begin() as s:
                import_all(s, self.site, PROGRAMME, self.policies, "test")
            engine.dispose()  # a PostgreSQL template may have no session open on it
            checkpoint(url)
            self.made[kind] = template_of(url)
        return self.made[kind]


@pytest.fixture(scope="session")
def templates(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_site: Site,
              policies: dict[str, Policy]) -> Templates:
    return Templates(request, tmp_path_factory.mktemp("template"), sample_site, policies)


@pytest.fixture()
def db_url(request: pytest.FixtureRequest, records_backend: str, records_dbs: RecordsDatabases) -> str:
    """The test's records database: a copy of the loaded sample when the test also asks for ``loaded`` (or
    ``session``), else empty and migrated."""
    if {"loaded", "session"} & set(request.fixturenames):
        return request.getfixturevalue("loaded_url")
    url = records_dbs.new(records_backend)
    upgrade(url)
    return url


@pytest.fixture()
def loaded_url(records_backend: str, records_dbs: RecordsDatabases, templates: Templates) -> str:
    """A private copy of the loaded sample programme."""
    return records_dbs.new(records_backend, template=templates.get(records_backend))


@pytest.fixture()
def sf(db_url: str) -> Iterator[sessionmaker]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture()
def loaded(loaded_url: str) -> Iterator[sessionmaker]:
    """A session factory on a private copy of the loaded sample programme; ``db_url`` is the same database."""
    engine = make_engine(loaded_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture()
def session(loaded: sessionmaker) -> Iterator[Session]:
    with loaded() as s:
        yield s
