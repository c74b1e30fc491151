"""One Alembic history for the whole records schema, on SQLite and on PostgreSQL: every table any area declares
on Base is made by upgrade(); an upgrade from each earlier revision keeps the rows it finds; downgrades go back
step by step; `retrofit records upgrade` says from which revision to which."""

from __future__ import annotations

import importlib
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from buildings.records.base import Base, make_engine, session_factory
from buildings.records.migrate import RECORD_MODULES, current, downgrade, head, history, upgrade
from buildings.records.models import PROGRAM_TABLES
from tests.seed import alarm_event

AREA_TABLES = {"users", "login_failures", "alarm", "alarm_maintenance", "api_tokens", "owner_contacts",
               "signing_keys", "evidence_signatures"}
REVISIONS = [r for r, _, _ in history()]
HEAD = "0004_alarm_flood_groups"


def _metadata_tables() -> set[str]:
    for module in RECORD_MODULES:
        importlib.import_module(module)
    return set(Base.metadata.tables)


def _diff(url: str) -> list[object]:
    """What autogenerate would change: the migrated schema against the models' metadata (tables, columns, types,
    nullability, indexes, unique and foreign keys)."""
    _metadata_tables()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> object:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _audit_guard_refuses(url: str) -> bool:
    """Whether the database itself refuses changing an audit row (the triggers of 0001 / 0003); rolled back."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE id = 1"))
                return False
            except DatabaseError as exc:
                return "append-only" in str(exc)
            finally:
                trans.rollback()
    finally:
        engine.dispose()


def _guard_triggers(url: str) -> set[str]:
    """The audit log's guard triggers in the database."""
    engine = make_engine(url)
    sql = ("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
           if url.startswith("sqlite") else
           "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal")
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(sql)).scalars())
    finally:
        engine.dispose()


SQLITE_GUARD = {"audit_log_no_delete", "audit_log_no_update", "audit_log_hash_once"}
PG_GUARD = {"audit_log_append_only", "audit_log_no_truncate"}


def test_history_is_one_line_of_revisions() -> None:
    assert REVISIONS == ["0001_initial", "0002_area_tables", "0003_audit_guard_postgresql", HEAD] and head() == HEAD
    assert [down for _, down, _ in history()] == [None, "0001_initial", "0002_area_tables",
                                                  "0003_audit_guard_postgresql"]


def test_fresh_upgrade_builds_every_table_and_autogenerate_sees_no_difference(records_url: str) -> None:
    declared = _metadata_tables()
    assert AREA_TABLES <= declared, "a records module is missing from RECORD_MODULES"
    done = upgrade(records_url)
    assert (done.before, done.after) == (None, HEAD)
    assert current(records_url) == head() == HEAD
    assert declared <= _tables(records_url)
    assert _diff(records_url) == []
    again = upgrade(records_url)
    assert (again.before, again.after) == (HEAD, HEAD) and "already at" in again.describe()


# --- an upgrade from each earlier revision, with the data a database at that revision would hold -----------------
def _fill(url: str, revision: str) -> dict[str, int]:
    """Write what a district running at ``revision`` would have: the programme (0001), users and alarms (0002)."""
    from buildings import SAMPLE_PROGRAMME, SAMPLE_SITE
    from buildings.records.program import import_all
    from buildings.site import load_site
    from buildings.subsidy.policy import load_policies

    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        import_all(s, load_site(str(SAMPLE_SITE)), SAMPLE_PROGRAMME, load_policies(), "before-upgrade")
    if revision != "0001_initial":
        from dashboard.auth import add_user
        from rules.alarms import AlarmBook

        add_user(engine, "li.wei", "correct horse battery", "district")
        now = time.time()
        events = [alarm_event("raise", "co-high", "jiefangbei-tower", "b1-carpark", now, "safety", "critical"),
                  alarm_event("raise", "ahu-sat-high", "huaxin-building", "ahu-2", now)]
        if revision in ("0002_area_tables", "0003_audit_guard_postgresql"):
            _old_alarms(engine, events)  # the alarm table of that time: no points / flood columns yet
        else:
            book = AlarmBook(engine)
            book.apply(events)
            book.close()
    with session_factory(engine)() as s:
        counts = {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in PROGRAM_TABLES}
    engine.dispose()
    return counts


def _old_alarms(engine: Engine, events: list) -> None:
    """Alarms as the code of revisions 0002/0003 wrote them (the columns of that time only)."""
    with engine.begin() as conn:
        for e in events:
            conn.execute(text("INSERT INTO alarm (rule, building, equipment, subject, family, severity, state, "
                              "raised_at, last_triggered_at, retriggers, message_zh, message_en, \"values\", "
                              "suppressed, during_maintenance, open_key) VALUES (:rule, :building, :equipment, "
                              ":subject, :family, :severity, 'raised', :ts, :ts, 0, '', '', '{}', false, false, "
                              ":key)"),
                         {"rule": e.rule, "building": e.building, "equipment": e.equipment, "subject": e.subject,
                          "family": e.family.value, "severity": e.severity.value, "ts": e.ts,
                          "key": f"{e.rule}|{e.building}|{e.subject}"})


@pytest.mark.parametrize("start", ["0001_initial", "0002_area_tables", "0003_audit_guard_postgresql"])
def test_upgrade_from_each_earlier_revision_keeps_every_row(records_url: str, start: str) -> None:
    upgrade(records_url, revision=start)
    assert current(records_url) == start
    before = _fill(records_url, start)
    assert before["audit_log"] > 20 and before["payments"] == 2
    done = upgrade(records_url)
    assert (done.before, done.after) == (start, HEAD)
    assert f"migrated from {start} to {HEAD}" in done.describe()
    assert _diff(records_url) == []
    engine = make_engine(records_url)
    with session_factory(engine)() as s:
        after = {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in PROGRAM_TABLES}
        assert after == before
        if start != "0001_initial":
            assert s.execute(text("SELECT username FROM users")).scalars().all() == ["li.wei"]
            assert s.execute(text("SELECT count(*) FROM alarm WHERE state = 'raised'")).scalar_one() == 2
            if start != "0001_initial":  # alarms from before 0004: single alarms, not flood-suppressed
                from rules.alarms import Alarm

                old = s.query(Alarm).all()
                assert [(a.points, a.open_points, a.flood) for a in old] == [([], [], False)] * 2
    engine.dispose()
    assert _audit_guard_refuses(records_url)  # on PostgreSQL, 0003 added the guard to rows already there


def test_database_whose_areas_used_create_all_is_upgraded_keeping_its_rows(records_url: str) -> None:
    """A database in service before 0002: the portfolio from 0001, users and alarms made by create_all."""
    _metadata_tables()
    upgrade(records_url, revision="0001_initial")
    from dashboard.auth import add_user
    from rules.alarms import AlarmBook

    engine = make_engine(records_url)
    add_user(engine, "li.wei", "correct horse battery", "district")  # create_all on first use, as before
    AlarmBook(engine).close()
    engine.dispose()
    assert {"users", "alarm"} <= _tables(records_url) and current(records_url) == "0001_initial"
    upgrade(records_url)
    assert current(records_url) == HEAD
    assert _diff(records_url) == []
    assert _scalar(records_url, "SELECT username FROM users") == "li.wei"


def test_whole_create_all_database_is_adopted(records_url: str) -> None:
    """Tests and helpers that call Base.metadata.create_all get stamped and upgraded without a clash."""
    _metadata_tables()
    engine = make_engine(records_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    upgrade(records_url)
    assert current(records_url) == head()
    assert _diff(records_url) == []


def test_create_all_on_first_use_still_works_after_upgrade(records_url: str) -> None:
    from api.tokens import create_tables as token_tables
    from dashboard.auth import create_tables as user_tables

    upgrade(records_url)
    engine = make_engine(records_url)
    user_tables(engine)  # a no-op on a migrated database, never an error
    token_tables(engine)
    engine.dispose()
    assert _diff(records_url) == []


# --- downgrades ---------------------------------------------------------------------------------------------------
def test_downgrade_step_by_step_then_up_again(records_url: str) -> None:
    upgrade(records_url, revision="0002_area_tables")
    before = _fill(records_url, "0002_area_tables")
    upgrade(records_url)
    everything = _tables(records_url)
    assert AREA_TABLES | set(PROGRAM_TABLES) <= everything

    done = downgrade(records_url, "0002_area_tables")
    assert (done.before, done.after) == (HEAD, "0002_area_tables")
    assert _tables(records_url) == everything  # 0003 and 0004 made no table
    cols = {c["name"] for c in inspect(make_engine(records_url)).get_columns("alarm")}
    assert not cols & {"points", "open_points", "flood"}  # 0004's columns went, the alarms stayed
    assert _scalar(records_url, "SELECT count(*) FROM alarm") == 2
    assert _scalar(records_url, "SELECT count(*) FROM audit_log") == before["audit_log"]
    if records_url.startswith("postgresql"):
        assert _guard_triggers(records_url) == set() and not _audit_guard_refuses(records_url)  # went with 0003
    else:
        assert _guard_triggers(records_url) == SQLITE_GUARD and _audit_guard_refuses(records_url)  # from 0001

    done = downgrade(records_url, "0001_initial")
    assert (done.before, done.after) == ("0002_area_tables", "0001_initial")
    assert _tables(records_url) == set(PROGRAM_TABLES)  # the areas' tables are gone, the programme stays
    assert _scalar(records_url, "SELECT count(*) FROM payments") == before["payments"]

    done = downgrade(records_url, "base")
    assert (done.before, done.after) == ("0001_initial", None) and _tables(records_url) == set()

    assert upgrade(records_url).after == HEAD
    assert _diff(records_url) == []
    assert _guard_triggers(records_url) == (SQLITE_GUARD if records_url.startswith("sqlite") else PG_GUARD)


def test_a_failed_migration_changes_nothing(records_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration runs in one transaction: one that fails half-way leaves the database at its old revision."""
    import buildings.records.migrate as migrate

    upgrade(records_url, revision="0001_initial")
    tables = _tables(records_url)
    real = migrate.command.upgrade

    def upgrade_then_fail(cfg, revision):
        real(cfg, revision)  # 0002 and 0003 ran: their tables exist inside the transaction...
        conn = cfg.attributes["connection"]
        assert "users" in inspect(conn).get_table_names()
        raise RuntimeError("power cut")  # ...and then the process fails before the commit

    monkeypatch.setattr(migrate.command, "upgrade", upgrade_then_fail)
    with pytest.raises(RuntimeError, match="power cut"):
        upgrade(records_url)
    monkeypatch.undo()
    assert current(records_url) == "0001_initial" and _tables(records_url) == tables


# --- the command ---------------------------------------------------------------------------------------------------
def test_records_commands_say_from_which_revision_to_which(records_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from retrofit.cli import app

    runner = CliRunner()
    monkeypatch.setenv("RETROFIT_RECORDS_URL", records_url)

    def run(*args: str, code: int = 0) -> str:
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, (args, res.output, res.exception)
        return " ".join(res.output.split())

    assert "at no revision (empty)" in run("records", "current")
    assert "migrated from an empty database to 0001_initial" in run("records", "upgrade", "--revision",
                                                                     "0001_initial")
    assert f"behind {HEAD}" in run("records", "current")
    assert f"migrated from 0001_initial to {HEAD}" in run("records", "upgrade")
    assert f"already at {HEAD}, nothing to do" in run("records", "upgrade")
    assert "--yes" in run("records", "downgrade", "0002_area_tables", code=2)
    assert current(records_url) == HEAD
    assert f"migrated from {HEAD} to 0002_area_tables" in run("records", "downgrade", "0002_area_tables", "--yes")
    assert "Can't locate revision" in run("records", "upgrade", "--revision", "0009_nope", code=1)
    if records_url.startswith("postgresql"):
        # the password never appears in what the command prints
        secret = records_url.replace("postgres@", "postgres:s3cret-pw@")
        assert "s3cret-pw" not in run("records", "current", "--url", secret)
    for cmd in ("upgrade", "downgrade", "current", "history"):
        assert "Example" in run("records", cmd, "--help")


def test_sqlite_stays_the_default_and_never_loads_psycopg(tmp_path, monkeypatch) -> None:
    """`retrofit demo` on a fresh machine: the records database is a SQLite file and psycopg is not imported."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from buildings import SAMPLE_SITE\n"
            "from buildings.records.program import import_sample\n"
            "from buildings.site import load_site\n"
            "from retrofit.settings import load_settings\n"
            "url = load_settings().effective_records_url\n"
            "assert url.startswith('sqlite:///'), url\n"
            "import_sample(url, load_site(str(SAMPLE_SITE)), 'demo').dispose()\n"  # what `retrofit demo` runs
            "assert 'psycopg' not in sys.modules, 'psycopg imported for a SQLite database'\n"
            "print('ok')\n")
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    env = {"RETROFIT_DATA_DIR": str(tmp_path), "RETROFIT_CONFIG": str(tmp_path / "none.toml"),
           "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok" and (tmp_path / "records.db").exists()
    url = f"sqlite:///{tmp_path / 'records.db'}"
    assert current(url) == HEAD and _scalar(url, "SELECT count(*) FROM buildings") == 4
