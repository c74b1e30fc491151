"""The `retrofit program`, `subsidy` and `savings` commands, run in-process with typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrofit.cli import app
from tests.recordsdb import BACKENDS, drop_database, new_database

runner = CliRunner()


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One imported records database for the module (the commands below write nothing or only files): SQLite
    in the data dir, or a PostgreSQL database named by RETROFIT_RECORDS_URL."""
    tmp_path = tmp_path_factory.mktemp("cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("RETROFIT_DATA_DIR", str(tmp_path / "data"))
    mp.setenv("RETROFIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    server = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    url = None
    if server is not None:
        url = new_database("postgresql", tmp_path, server)
        mp.setenv("RETROFIT_RECORDS_URL", url.replace("postgresql+psycopg://", "postgresql://"))
    r = runner.invoke(app, ["program", "import"])
    assert r.exit_code == 0, r.output
    assert "imported 4 buildings, 5 policies" in r.output
    yield tmp_path
    mp.undo()
    if url:
        drop_database(url, server)


def test_status_check_rank_json(env: Path) -> None:
    r = runner.invoke(app, ["program", "status", "--building", "daping-makerworks", "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)[0]
    assert st["stage"] == "mv" and st["vote"]["approved"] and st["applications"][0]["paid"] == 68800
    r = runner.invoke(app, ["subsidy", "check", "--building", "jiefangbei-tower", "--policy",
                            "CQ-YZ-OLDBLDG-SMART-DEMO", "--as-of", "2026-11-26", "--json"])
    e = json.loads(r.output)
    assert e["verdict"] == "eligible" and e["amount"]["capped"] == 1380000
    r = runner.invoke(app, ["subsidy", "check", "--building", "huaxin-building", "--policy",
                            "CQ-YZ-OLDBLDG-SMART-DEMO", "--as-of", "2026-11-26"])
    assert r.exit_code == 0 and "not_yet" in r.output and "unified_operator_id" in r.output
    assert "next steps:" in r.output and "owner: appoint a unified operator and record it" in r.output
    r = runner.invoke(app, ["program", "rank", "--as-of", "2026-11-26", "--json"])
    assert json.loads(r.output)[0]["building_id"] == "jiefangbei-tower"
    r = runner.invoke(app, ["subsidy", "check", "--building", "jiefangbei-tower", "--policy", "NOPE"])
    assert r.exit_code == 1 and "unknown policy 'NOPE'" in r.output


def test_refusals_exit_nonzero(env: Path) -> None:
    r = runner.invoke(app, ["subsidy", "pay", "--application", "app-jfb-cqyz", "--tranche", "2", "--amount",
                            "900000", "--date", "2026-12-20"])
    assert r.exit_code == 2 and "beyond" in r.output and "nothing was recorded" in r.output
    r = runner.invoke(app, ["program", "milestone", "--project", "hx-2026-public-areas", "--name",
                            "Construction complete", "--date", "2027-06-30", "--by", "supervisor"])
    assert r.exit_code == 2 and "out of order" in r.output
    r = runner.invoke(app, ["savings", "--building", "jiefangbei-tower", "--baseline", "2025-01-01",
                            "--reporting", "2025-07-01:2025-12-31"])
    assert r.exit_code == 1 and "FROM:TO" in r.output


def test_export_yaml_and_csv(env: Path) -> None:
    out = env / "programme.yaml"
    assert runner.invoke(app, ["program", "export", "--out", str(out)]).exit_code == 0
    assert "jfb-2024-smart-green" in out.read_text(encoding="utf-8")
    r = runner.invoke(app, ["program", "export", "--format", "csv", "--out", str(env / "csv")])
    assert r.exit_code == 0 and (env / "csv" / "payments.csv").exists()


def test_bad_policy_folder_refused(env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "pols"
    bad.mkdir()
    (bad / "x.yaml").write_text("id: X\nname: x\n", encoding="utf-8")
    r = runner.invoke(app, ["program", "import", "--policies", str(bad)])
    assert r.exit_code == 2 and "x.yaml" in r.output and "nothing was imported" in r.output


def test_help_has_examples() -> None:
    for cmd in (["program", "import"], ["program", "export"], ["program", "status"], ["program", "milestone"],
                ["program", "rank"], ["subsidy", "check"], ["subsidy", "pay"], ["subsidy", "policies"],
                ["savings"]):
        r = runner.invoke(app, [*cmd, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, cmd
