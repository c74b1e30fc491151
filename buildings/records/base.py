"""One declarative Base and engine factory for the records database (SQLite by default, PostgreSQL by URL).

Every package that keeps records (buildings, rules' alarms, dashboard users, API tokens) declares its tables
on this Base, so one Alembic history and one `create_all` cover them all.

PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``; a plain ``postgresql://`` URL is read the same
way). SQLAlchemy imports the driver only when such an engine is made, so SQLite-only runs never load it.

Read-modify-write transactions (a payment checked against what was paid, an acknowledgement that must not undo
a clear) lock what they read: the row with ``SELECT ... FOR UPDATE`` on PostgreSQL, and on SQLite, where the
driver only begins a transaction at the first write, ``write_lock`` takes the database's write lock first
(``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


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
        def _pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(postgres_url(url), pool_pre_ping=True)


def postgres_url(url: str) -> str:
    """A PostgreSQL URL with the psycopg 3 driver (``postgresql://`` and ``postgres://`` would ask for psycopg2)."""
    u = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def write_lock(s: Session | Connection) -> None:
    """Take SQLite's write lock now, before this transaction reads what it will change (``BEGIN IMMEDIATE``):
    another process's commit can then no longer come between the read and the write. No-op on PostgreSQL, where
    readers lock rows with FOR UPDATE, and once the transaction has written (it holds the lock already)."""
    conn = s.connection() if isinstance(s, Session) else s
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker:
    """A sessionmaker bound to the engine (expire_on_commit off: records are read after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
