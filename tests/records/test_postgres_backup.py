"""docs/operator-guide.md "The records database on PostgreSQL", step by step against the private cluster: a role
and a database it owns, the URL in RETROFIT_RECORDS_URL, `retrofit records upgrade`, the programme imported and
sealed, a backup with pg_dump, a restore with pg_restore into a new database, and the restored copy verified."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from buildings.records import make_engine
from buildings.records.migrate import head
from buildings.records.models import PROGRAM_TABLES
from retrofit.cli import app
from retrofit.devservers import PostgresServer

PASSWORD = "l0ng/random@pass word"  # characters a URL must percent-encode


def run(*args: str, code: int = 0) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == code, (args, res.output, res.exception)
    return " ".join(res.output.split())


def tool(*argv: str) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (argv[0], res.stderr)
    return res.stdout


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in PROGRAM_TABLES}
    engine.dispose()
    return out


@pytest.fixture()
def district_db(postgres: PostgresServer) -> tuple[str, str]:
    """The role and database of the guide (names unique to this test); returns (admin URL for psql, the URL)."""
    admin = postgres.url().replace("postgresql+psycopg://", "postgresql://")
    role, db = f"retrofit_{postgres.port}", f"retrofit_{postgres.port}"
    tool("psql", admin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    tool("psql", admin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
         f"CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8' TEMPLATE template0")
    yield admin, f"postgresql://{role}:{quote(PASSWORD, safe='')}@127.0.0.1:{postgres.port}/{db}"
    for sql in (f"DROP DATABASE IF EXISTS {db}_restored WITH (FORCE)", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)",
                f"DROP ROLE IF EXISTS {role}"):
        postgres.admin(sql)


def test_set_up_back_up_and_restore_as_the_guide_says(district_db: tuple[str, str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    admin, url = district_db
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETROFIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    monkeypatch.setenv("RETROFIT_RECORDS_URL", url)

    out = run("records", "upgrade")
    assert f"migrated from an empty database to {head()}" in out
    assert "l0ng" not in out and ":***@127.0.0.1" in out  # the password is never printed
    run("program", "import")
    run("evidence", "seal")
    assert "OK: checked" in run("evidence", "verify")
    before = counts(url)
    assert before["buildings"] == 4 and before["audit_log"] > 20

    dump = tmp_path / "records.dump"
    tool("pg_dump", "-Fc", "-d", url, "-f", str(dump))
    restored = url.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1] + "_restored"
    role = url.split("//", 1)[1].split(":", 1)[0]
    tool("psql", admin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
         f"CREATE DATABASE {restored.rsplit('/', 1)[1]} OWNER {role} ENCODING 'UTF8' TEMPLATE template0")
    tool("pg_restore", "--no-owner", f"--role={role}", "--exit-on-error", "-d", restored, str(dump))

    monkeypatch.setenv("RETROFIT_RECORDS_URL", restored)
    assert f"at {head()} (the newest)" in run("records", "current")
    assert counts(restored) == before
    assert "OK: checked" in run("evidence", "verify") and f"{before['audit_log']} audit rows" in run(
        "evidence", "verify")
    # the restored database still refuses changes to its audit log (the trigger came with the dump)
    res = subprocess.run(["psql", restored, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                          "DELETE FROM audit_log WHERE id = 1"], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "append-only" in res.stderr
