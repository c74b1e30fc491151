"""The audit chain behind the product's back, on SQLite and on PostgreSQL: the database refuses a change to an
audit row; someone with the power to lift that guard (a DBA on PostgreSQL, file access on SQLite) can change or
delete rows, and `retrofit evidence verify` names what was changed or deleted."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from retrofit.cli import app


def run(*args: str, code: int = 0) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == code, (args, res.output, res.exception)
    return " ".join(res.output.split())


def psql_url(url: str) -> str:
    """The URL as libpq's tools (psql, pg_dump) take it: no SQLAlchemy driver name."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def psql(url: str, sql: str, ok: bool = True) -> subprocess.CompletedProcess:
    """Run SQL with the real ``psql`` client, as an operator (or an intruder) at a terminal would."""
    res = subprocess.run(["psql", psql_url(url), "-v", "ON_ERROR_STOP=1", "-X", "-q", "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if ok:
        assert res.returncode == 0, res.stderr
    return res


def tamperer(url: str) -> Callable[..., None]:
    """``tamper(sql, *lift)``: run ``sql`` directly on the database; first try it with the guard in place (it
    must be refused), then lift the guard (on SQLite the triggers ``lift`` names: "update", "delete",
    "hash_once"; on PostgreSQL a superuser disables the trigger) and run it."""
    if url.startswith("sqlite"):
        path = make_url(url).database

        def tamper_sqlite(sql: str, *lift: str) -> None:
            con = sqlite3.connect(path)
            with pytest.raises(sqlite3.DatabaseError, match="append-only|already set"):
                con.execute(sql)
            for name in lift:
                con.execute(f"DROP TRIGGER audit_log_{name if name == 'hash_once' else 'no_' + name}")
            con.execute(sql)
            con.commit()
            con.close()

        return tamper_sqlite

    def tamper_postgres(sql: str, *_lift: str) -> None:
        refused = psql(url, sql, ok=False)
        assert refused.returncode != 0 and ("append-only" in refused.stderr or "already set" in refused.stderr)
        psql(url, f"ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; {sql}")

    return tamper_postgres


@pytest.fixture()
def sealed(loaded_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The loaded sample programme, its audit log sealed by `retrofit evidence seal`; the commands' records
    database is this one (RETROFIT_RECORDS_URL)."""
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETROFIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("RETROFIT_RECORDS_URL", loaded_url)
    assert "sealed" in run("evidence", "seal")
    assert "OK: checked" in run("evidence", "verify")
    return loaded_url


def test_a_changed_audit_row_is_found(sealed: str) -> None:
    tamperer(sealed)("UPDATE audit_log SET actor = 'someone-else' WHERE id = 5", "update")
    out = run("evidence", "verify", code=1)
    assert "audit_log row 5" in out and "changed after sealing" in out


def test_a_deleted_audit_row_is_found(sealed: str) -> None:
    tamperer(sealed)("DELETE FROM audit_log WHERE id = 7", "delete")
    out = run("evidence", "verify", code=1)
    assert "audit_log row 8" in out and "row 6" in out and "deleted" in out


def test_a_rewritten_hash_is_found(sealed: str) -> None:
    """Changing a row and its hash together still breaks the next row's link to it."""
    import hashlib

    forged = hashlib.sha256(b"forged").hexdigest()
    tamperer(sealed)(f"UPDATE audit_log SET new_value = 'x', hash = '{forged}' WHERE id = 3", "update",
                     "hash_once")
    out = run("evidence", "verify", code=1)
    assert "audit_log row 3" in out and "audit_log row 4" in out and "prev_hash does not match" in out
