"""Run the records database migrations (Alembic) from code: ``upgrade(url)``, ``downgrade(url, rev)``,
``current(url)``, ``history()``, ``revision``. `retrofit records upgrade|downgrade|current|history` calls these.

A migration runs in one transaction, holding a lock (PostgreSQL: an advisory lock; SQLite: its write lock) so
two processes that start at once on a new database migrate it once, and a failed migration leaves the schema as
it was. The Alembic scripts live in ``buildings/records/migrations``. ``RECORD_MODULES`` lists the modules whose tables
the migration environment must know (for autogenerate); each area that declares tables on the shared Base adds
its module here. To add a revision after changing tables:

    .venv/bin/python -m buildings.records.migrate revision "add alarm notes"   # autogenerate against a scratch DB
    retrofit records upgrade --url sqlite:///retrofit-data/records.db
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from buildings.records.base import make_engine, write_lock

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 7270002  # the PostgreSQL advisory lock key held while migrating
RECORD_MODULES = ["buildings.records.models", "buildings.access", "rules.alarms", "api.tokens", "api.pii",
                  "api.evidence"]


def alembic_config(url: str, engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("record_modules", " ".join(RECORD_MODULES))
    cfg.attributes["engine"] = engine
    return cfg


@dataclass(frozen=True)
class Migrated:
    """What a migration did: the database (password hidden) and the revision before and after."""

    url: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.before == self.after:
            return f"records database {self.url}: already at {self.after or 'no revision (empty)'}, nothing to do"
        return (f"records database {self.url}: migrated from {self.before or 'an empty database'} "
                f"to {self.after or 'an empty database (base)'}")


def _lock(conn: Connection) -> None:
    """One migrator at a time, the whole migration in this transaction (see the module docstring)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    else:
        write_lock(conn)


def _migrate(url: str, engine: Engine | None, step: str, revision: str) -> Migrated:
    from sqlalchemy import inspect

    own = engine is None
    engine = engine or make_engine(url)
    try:
        with engine.begin() as conn:
            _lock(conn)
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            before = MigrationContext.configure(conn).get_current_revision()
            tables = set(inspect(conn).get_table_names())
            if step == "upgrade" and before is None and "retrofit_projects" in tables:
                # made by Base.metadata.create_all (tests, another area's helper): adopt it at the first revision
                command.stamp(cfg, "0001_initial")
            getattr(command, step)(cfg, revision)
            after = MigrationContext.configure(conn).get_current_revision()
    finally:
        if own:
            engine.dispose()
    return Migrated(make_url(url).render_as_string(hide_password=True), before, after)


def upgrade(url: str, revision: str = "head", engine: Engine | None = None) -> Migrated:
    """Bring the records database at ``url`` to ``revision`` (creating it if needed); says from which to which."""
    return _migrate(url, engine, "upgrade", revision)


def downgrade(url: str, revision: str, engine: Engine | None = None) -> Migrated:
    """Take the records database back to ``revision`` ("base": no tables). Each step back drops the tables its
    revision made, with their rows: back up first (docs/operator-guide.md)."""
    return _migrate(url, engine, "downgrade", revision)


def history() -> list[tuple[str, str | None, str]]:
    """Every revision, oldest first: (revision, the one before it, what it does)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    revs = list(script.walk_revisions("base", "heads"))
    return [(r.revision, r.down_revision if isinstance(r.down_revision, str | None) else ",".join(r.down_revision),
             " ".join((r.doc or "").strip().split("\n\n")[0].split())) for r in reversed(revs)]


def current(url: str, engine: Engine | None = None) -> str | None:
    """The revision the database is at (None for a database never migrated)."""
    own = engine is None
    engine = engine or make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if own:
            engine.dispose()


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def revision(message: str, scratch_url: str = "sqlite:///retrofit-data/.alembic-scratch.db") -> None:
    """Autogenerate a revision: upgrade a scratch database to head, then diff it against the models."""
    import os

    path = scratch_url.split("///", 1)[-1]
    if os.path.exists(path):
        os.remove(path)
    upgrade(scratch_url)
    command.revision(alembic_config(scratch_url), message=message, autogenerate=True)
    os.remove(path)


if __name__ == "__main__":  # pragma: no cover - developer tool
    if len(sys.argv) >= 3 and sys.argv[1] == "upgrade":
        print(upgrade(sys.argv[2]).describe())
    elif len(sys.argv) >= 3 and sys.argv[1] == "revision":
        revision(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
