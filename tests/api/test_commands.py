"""The commands: `retrofit api` as a real process, `users token create|list|revoke`, `catalogue export`,
`export energy` (once and as the scheduled job), `export owners` and `contacts import` (personal fields masked)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from retrofit.cli import app
from tests.api.conftest import PERSONAL, ApiEnv


def said(res) -> str:
    """The command's output with rich's line wrapping undone (wrap points depend on path lengths)."""
    return " ".join(res.output.split())


def squashed(res) -> str:
    """The command's output with all whitespace removed: rich may wrap a long temp path at any character."""
    return "".join(res.output.split())


def run(*args: str, ok: bool = True, env: dict[str, str] | None = None):
    res = CliRunner().invoke(app, list(args), env=env)
    if ok:
        assert res.exit_code == 0, (args, res.output, res.exception)
    return res


def test_token_lifecycle_and_the_api_process(fresh_env: ApiEnv) -> None:
    from retrofit.devservers import free_port

    res = run("users", "token", "create", "--role", "owner", "--owner", "yuxin-property", "--expires", "7",
              "--name", "bms-vendor", "--rate", "30")
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("rft_")
    listed = json.loads(run("users", "token", "list", "--json").stdout)
    mine = next(t for t in listed if t["name"] == "bms-vendor")
    assert mine["state"] == "active" and mine["owner"] == "yuxin-property" and token not in json.dumps(listed)
    with __import__("sqlite3").connect(fresh_env.data_dir / "records.db") as c:
        assert token not in json.dumps(c.execute("SELECT * FROM api_tokens").fetchall())
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "retrofit.cli", "api", "--port", str(port)], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/openapi.json", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        auth = {"Authorization": f"Bearer {token}"}
        r = requests.get(base + "/api/v1/buildings", headers=auth, timeout=10)
        assert [b["id"] for b in r.json()["items"]] == ["jiefangbei-tower"]
        run("users", "token", "revoke", mine["id"])
        assert requests.get(base + "/api/v1/buildings", headers=auth, timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert json.loads(run("users", "token", "list", "--json").stdout)[-1]["state"] == "revoked"


@pytest.mark.parametrize("args, message", [
    (["--role", "owner"], "needs --owner"), (["--role", "district", "--owner", "x"], "only for owner"),
    (["--role", "owner", "--owner", "nobody"], "not in the site"), (["--role", "owner", "--owner",
                                                                    "yuxin-property", "--pii"], "only for district"),
    (["--role", "boss"], "use one of"), (["--role", "district", "--expires", "0"], "--expires")])
def test_token_create_refuses(fresh_env: ApiEnv, args: list[str], message: str) -> None:
    res = run("users", "token", "create", *args, ok=False)
    assert res.exit_code == 2 and message in said(res)


def test_catalogue_export_with_brick_models(fresh_env: ApiEnv, tmp_path: Path) -> None:
    import rdflib

    out = tmp_path / "cat.json"
    run("catalogue", "export", "--out", str(out), "--brick-dir", str(tmp_path / "brick"))
    ds = json.loads(out.read_text())["datasets"]
    assert {"subitem-energy", "owners", "alarms"} <= {d["id"] for d in ds}
    rows = list(csv.DictReader(io.StringIO(run("catalogue", "export", "--format", "csv").stdout)))
    assert {r["field"] for r in rows if r["dataset"] == "owners" and r["personal"] == "yes"} == {
        "name", "contact_name", "id_number", "phone"}
    ttl = sorted((tmp_path / "brick").glob("*.ttl"))
    assert [p.stem for p in ttl] == ["chaotianmen-harbour", "daping-makerworks", "huaxin-building",
                                     "jiefangbei-tower"]
    for p in ttl:
        assert len(rdflib.Graph().parse(p, format="turtle")) > 100


def test_export_energy_csv_json_and_files(fresh_env: ApiEnv, tmp_path: Path) -> None:
    from buildings.site import load_site
    from telemetry.embedded import EmbeddedStore
    from telemetry.queries import energy_by_subitem

    end = fresh_env.end // 3600 * 3600
    start = end - 6 * 3600
    res = run("export", "energy", "--building", "jiefangbei-tower", "--from", str(start), "--to", str(end),
              "--resolution", "15min")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {r["resolution"] for r in rows} == {"15min"} and {r["building_code"] for r in rows} == {"500103A0004"}
    elec = [r for r in rows if r["energy_type"] == "electricity" and r["subitem"] == "total"]
    assert len(elec) == 24
    store = EmbeddedStore(fresh_env.store_path, readonly=True)
    want = energy_by_subitem(store, load_site(str(fresh_env.site_path)), "jiefangbei-tower", start, end, "hour")
    store.close()
    assert sum(float(r["value"]) for r in elec) == pytest.approx(sum(v for _, v in want["total"]), rel=1e-4)
    run("export", "energy", "--from", str(start), "--to", str(end), "--format", "json", "--out-dir",
        str(tmp_path / "out"))
    files = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    assert len(files) == 4 and all(f.startswith("500103") and f.endswith("_1h.json") for f in files)
    doc = json.loads(next((tmp_path / "out").glob("*jiefangbei-tower*.json")).read_text())
    assert doc["building"]["code"] == "500103A0004" and doc["period"]["resolution"] == "1h"
    assert {r["item_code"] for r in doc["records"]} >= {"01000", "01A00", "01B00", "02000", "03000"}
    res = run("export", "energy", "--building", "nowhere", "--from", "2026-01-01", "--to", "2026-01-02", ok=False)
    assert res.exit_code == 2 and "not in the site" in said(res)


def test_scheduled_export_resumes_without_gaps(fresh_env: ApiEnv, tmp_path: Path) -> None:
    out = tmp_path / "city"
    run("export", "energy", "--building", "huaxin-building", "--every", "1h", "--iterations", "1",
        "--out-dir", str(out), "--resolution", "15min")
    state = json.loads((out / ".export-state.json").read_text())
    first = state["huaxin-building/15min"]
    assert first == time.time() // 3600 * 3600 and len(list(out.glob("*.csv"))) == 1
    (out / ".export-state.json").write_text(json.dumps({"huaxin-building/15min": first - 3 * 3600}))
    run("export", "energy", "--building", "huaxin-building", "--every", "1h", "--iterations", "1",
        "--out-dir", str(out), "--resolution", "15min")
    newest = max(out.glob("*.csv"), key=lambda p: p.stat().st_mtime)
    rows = [r for r in csv.DictReader(newest.open()) if r["energy_type"] == "electricity" and r["subitem"] == "total"]
    assert len(rows) == 12  # the three hours since the recorded state, at 15 minutes


def test_owner_export_and_contacts_mask_personal_fields(fresh_env: ApiEnv, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("owner_id,contact_name,id_number,phone\nf03-individuals,李四,12345,13800000000\n")
    res = run("contacts", "import", str(bad), ok=False)
    assert res.exit_code == 2 and "bad.csv:2:id_number" in squashed(res) and "12345" not in said(res)
    masked = run("export", "owners", "--format", "csv").stdout
    assert "王**" in masked and "500103********1234" in masked and "138****5678" in masked
    assert not [x for x in PERSONAL if x in masked]
    res = run("export", "owners", "--format", "json", env={"RETROFIT_API_TOKEN": fresh_env.tokens["district_pii"]})
    assert all(x in res.stdout for x in PERSONAL) and json.loads(res.stdout)["masked"] is False
    res = run("export", "owners", "--format", "json", env={"RETROFIT_API_TOKEN": fresh_env.tokens["yuxin"]})
    doc = json.loads(res.stdout)
    assert doc["masked"] is True and {o["building_id"] for o in doc["owners"]} == {"jiefangbei-tower"}
    res = run("export", "owners", env={"RETROFIT_API_TOKEN": fresh_env.tokens["revoked"]}, ok=False)
    assert res.exit_code == 2
