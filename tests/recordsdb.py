"""Records databases for the tests, of either kind: a SQLite file, or a database in the session's private
PostgreSQL cluster (``retrofit.devservers.start_postgres``). The records suites run once per kind, like the
telemetry store suite runs once per store."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from retrofit.devservers import PostgresServer

BACKENDS = ("sqlite", "postgresql")
_numbers = itertools.count(1)


def new_database(kind: str, folder: Path, server: PostgresServer | None = None, template: str | None = None) -> str:
    """A new, empty records database (not migrated) and its URL; ``template`` (a file, or a database name in
    the cluster) is copied instead of starting empty."""
    n = next(_numbers)
    if kind == "sqlite":
        path = folder / f"records-{n}.db"
        if template:
            shutil.copy(template, path)
        return f"sqlite:///{path}"
    if server is None:
        raise ValueError("a postgresql records database needs the session's PostgreSQL server")
    name = f"rt_{os.getpid()}_{n}"
    server.admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return server.url(name)


def database_name(url: str) -> str:
    """The database of a URL: the file of a SQLite URL, the database name of a PostgreSQL one."""
    return make_url(url).database or ""


def drop_database(url: str, server: PostgresServer | None) -> None:
    """Drop a test's PostgreSQL database, ending every session still open on it (SQLite files go with tmp)."""
    if url.startswith("postgresql") and server is not None:
        server.admin(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def checkpoint(url: str) -> None:
    """Fold a SQLite file's WAL into the file, so a plain copy of it has every commit (no-op for PostgreSQL)."""
    if url.startswith("sqlite"):
        from buildings.records.base import make_engine

        engine = make_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()


def template_of(url: str) -> str:
    """What ``new_database(template=...)`` takes to copy the database at ``url``."""
    return database_name(url)


class RecordsDatabases:
    """A test's records databases: ``new(kind)`` makes one (a file, or a database in the session cluster); every
    PostgreSQL database made is dropped when the test ends."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path):
        self.request = request
        self.folder = folder
        self.urls: list[str] = []

    @property
    def server(self) -> PostgresServer:
        return self.request.getfixturevalue("postgres")

    def new(self, kind: str, template: str | None = None) -> str:
        url = new_database(kind, self.folder, self.server if kind == "postgresql" else None, template)
        self.urls.append(url)
        return url

    def drop_all(self) -> None:
        for url in self.urls:
            if url.startswith("postgresql"):
                drop_database(url, self.server)
