"""Run the records database migrations (Alembic) from code: ``upgrade(url)``, ``current(url)``, ``revision``.

The Alembic scripts live in ``buildings/records/migrations``. ``RECORD_MODULES`` lists the modules whose tables
the migration environment must know (for autogenerate); each area that declares tables on the shared Base adds
its module here. To add a revision after changing tables:

    .venv/bin/python -m buildings.records.migrate revision "add alarm notes"   # autogenerate against a scratch DB
    .venv/bin/python -m buildings.records.migrate upgrade sqlite:///retrofit-data/records.db
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from buildings.records.base import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
RECORD_MODULES = ["buildings.records.models", "buildings.access", "rules.alarms", "api.tokens", "api.pii",
                  "api.evidence"]


def alembic_config(url: str, engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("record_modules", " ".join(RECORD_MODULES))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(url: str, revision: str = "head", engine: Engine | None = None) -> None:
    """Bring the records database at ``url`` to ``revision`` (creating it if needed)."""
    from sqlalchemy import inspect

    own = engine is None
    engine = engine or make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            tables = set(inspect(conn).get_table_names())
            if "alembic_version" not in tables and "retrofit_projects" in tables:
                # made by Base.metadata.create_all (tests, another area's helper): adopt it at the first revision
                command.stamp(cfg, "0001_initial")
            command.upgrade(cfg, revision)
    finally:
        if own:
            engine.dispose()


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
        upgrade(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "revision":
        revision(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
