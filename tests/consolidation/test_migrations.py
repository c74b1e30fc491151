"""One Alembic history for the whole records schema: every table any area declares on Base is made by upgrade()."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from buildings.records.base import Base, make_engine
from buildings.records.migrate import RECORD_MODULES, current, head, upgrade

AREA_TABLES = {"users", "login_failures", "alarm", "alarm_maintenance", "api_tokens", "owner_contacts",
               "signing_keys", "evidence_signatures"}


def _metadata_tables() -> set[str]:
    for module in RECORD_MODULES:
        importlib.import_module(module)
    return set(Base.metadata.tables)


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_fresh_upgrade_builds_every_table_and_autogenerate_sees_no_difference(tmp_path: Path) -> None:
    declared = _metadata_tables()
    assert AREA_TABLES <= declared, "a records module is missing from RECORD_MODULES"
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    assert current(url) == head() == "0002_area_tables"
    assert declared <= _tables(url)
    assert _diff(url) == []


def test_database_whose_areas_used_create_all_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    """A database in service before 0002: the portfolio from 0001, users and alarms made by create_all."""
    _metadata_tables()
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, revision="0001_initial")
    from dashboard.auth import add_user
    from rules.alarms import AlarmBook

    engine = make_engine(url)
    add_user(engine, "li.wei", "correct horse battery", "district")  # create_all on first use, as before
    AlarmBook(engine).close()
    engine.dispose()
    assert {"users", "alarm"} <= _tables(url) and current(url) == "0001_initial"
    upgrade(url)
    assert current(url) == "0002_area_tables"
    assert _diff(url) == []
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT username FROM users")).scalars().all() == ["li.wei"]
    engine.dispose()


def test_whole_create_all_database_is_adopted(tmp_path: Path) -> None:
    """Tests and helpers that call Base.metadata.create_all get stamped and upgraded without a clash."""
    _metadata_tables()
    url = f"sqlite:///{tmp_path / 'all.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    upgrade(url)
    assert current(url) == head()
    assert _diff(url) == []


def test_create_all_on_first_use_still_works_after_upgrade(tmp_path: Path) -> None:
    from api.tokens import create_tables as token_tables
    from dashboard.auth import create_tables as user_tables

    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade(url)
    engine = make_engine(url)
    user_tables(engine)  # a no-op on a migrated database, never an error
    token_tables(engine)
    engine.dispose()
    assert _diff(url) == []
