"""One declarative Base and engine factory for the records database (SQLite by default, PostgreSQL by URL).

Every package that keeps records (buildings, rules' alarms, dashboard users, API tokens) declares its tables
on this Base, so one Alembic history and one `create_all` cover them all.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker


class Base(DeclarativeBase):
    """The declarative base of every records table."""


def make_engine(url: str) -> Engine:
    """An engine for the records URL; SQLite gets WAL and foreign keys so several processes can read."""
    if url.startswith("sqlite"):
        import os

        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI connection
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker:
    """A sessionmaker bound to the engine (expire_on_commit off: records are read after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
