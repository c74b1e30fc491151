"""Paperless evidence through the real commands: keys, signed documents and applications, the audit hash chain,
and `retrofit evidence verify` catching a changed document, a changed file, a changed or deleted audit entry and
a truncated log."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrofit.cli import app
from tests.api.conftest import ApiEnv

PASS = "a long enough passphrase"


def said(res) -> str:
    """The command's output with rich's line wrapping undone (wrap points depend on path lengths)."""
    return " ".join(res.output.split())


def run(*args: str, ok: bool = True):
    res = CliRunner().invoke(app, list(args))
    if ok:
        assert res.exit_code == 0, (args, res.output, res.exception)
    return res


@pytest.fixture()
def signed(fresh_env: ApiEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ApiEnv, Path, int]:
    """dora (district) has a key; a document whose file is on disk is filed and signed; an application signed."""
    from buildings.records.base import make_engine, session_factory
    from buildings.records.program import add_document

    monkeypatch.setenv("RETROFIT_KEY_PASSPHRASE", PASS)
    doc = tmp_path / "mv-report.pdf"
    doc.write_bytes(b"%PDF-1.4 measurement and verification report, 12 months after the retrofit\n")
    engine = make_engine(fresh_env.records_url)
    with session_factory(engine).begin() as s:
        d = add_document(s, "jfb-2024-smart-green", "mv_report", "M&V report", content=doc.read_bytes(),
                         actor="tests", milestone="M&V report after 12 months")
        doc_id = d.id
    engine.dispose()
    key = tmp_path / "keys" / "dora.pem"
    run("evidence", "keygen", "dora", "--out", str(key))
    assert key.stat().st_mode & 0o777 == 0o600 and b"ENCRYPTED" in key.read_bytes()
    run("evidence", "sign", "--user", "dora", "--document", str(doc_id), "--file", str(doc), "--key-file", str(key))
    run("evidence", "sign", "--user", "dora", "--application", "app-jfb-cqyz", "--key-file", str(key))
    return fresh_env, doc, doc_id


def db(env: ApiEnv) -> sqlite3.Connection:
    return sqlite3.connect(env.data_dir / "records.db")


def test_untouched_evidence_verifies(signed: tuple[ApiEnv, Path, int]) -> None:
    res = run("evidence", "verify")
    assert "OK: checked" in said(res) and "2 signatures" in said(res)


def test_a_changed_document_digest_is_detected(signed: tuple[ApiEnv, Path, int]) -> None:
    env, _, doc_id = signed
    with db(env) as c:
        c.execute("UPDATE documents SET sha256 = ? WHERE id = ?", (hashlib.sha256(b"forged").hexdigest(), doc_id))
    res = run("evidence", "verify", ok=False)
    assert res.exit_code == 1
    assert f"document {doc_id}" in said(res) and "changed: sha256" in said(res)
    assert "subsidy_application app-jfb-cqyz" in said(res)  # the application signed the document digests too


def test_a_changed_file_is_detected(signed: tuple[ApiEnv, Path, int]) -> None:
    _, doc, doc_id = signed
    doc.write_bytes(doc.read_bytes().replace(b"12 months", b"3 months"))
    res = run("evidence", "verify", ok=False)
    assert res.exit_code == 1 and f"document {doc_id}" in said(res) and "no longer matches" in said(res)


def test_a_changed_application_is_detected(signed: tuple[ApiEnv, Path, int]) -> None:
    env, _, _ = signed
    with db(env) as c:
        c.execute("UPDATE subsidy_applications SET assessed_amount = 9999999 WHERE id = 'app-jfb-cqyz'")
    res = run("evidence", "verify", ok=False)
    assert "app-jfb-cqyz" in said(res) and "assessed_amount" in said(res)


def test_a_changed_audit_entry_is_detected(signed: tuple[ApiEnv, Path, int]) -> None:
    env, _, _ = signed
    with db(env) as c:
        with pytest.raises(sqlite3.DatabaseError):  # the database refuses it first...
            c.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 5")
        c.execute("DROP TRIGGER audit_log_no_update")  # ...so an attacker with file access drops the guard
        c.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 5")
    res = run("evidence", "verify", ok=False)
    assert "audit_log row 5" in said(res) and "changed after sealing" in said(res)


def test_a_deleted_audit_entry_is_detected(signed: tuple[ApiEnv, Path, int]) -> None:
    env, _, _ = signed
    with db(env) as c:
        c.execute("DROP TRIGGER audit_log_no_delete")
        c.execute("DELETE FROM audit_log WHERE id = 7")
    res = run("evidence", "verify", ok=False)
    assert "audit_log row 8" in said(res) and "row 6" in said(res) and "deleted" in said(res)


def test_a_truncated_log_is_caught_by_a_signed_checkpoint(signed: tuple[ApiEnv, Path, int], tmp_path: Path) -> None:
    env, _, _ = signed
    run("evidence", "seal", "--sign-as", "dora", "--key-file", str(tmp_path / "keys" / "dora.pem"))
    with db(env) as c:
        last = c.execute("SELECT max(id) FROM audit_log").fetchone()[0]
        c.execute("DROP TRIGGER audit_log_no_delete")
        c.execute("DELETE FROM audit_log WHERE id >= ?", (last - 1,))
    res = run("evidence", "verify", ok=False)
    assert f"audit_log row {last} is missing" in said(res) and "truncated" in said(res)


def test_signing_refuses_wrong_keys_files_and_users(signed: tuple[ApiEnv, Path, int], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, doc, doc_id = signed
    key = tmp_path / "keys" / "dora.pem"
    other = tmp_path / "other.pdf"
    other.write_bytes(b"not the approved file")
    res = run("evidence", "sign", "--user", "dora", "--document", str(doc_id), "--file", str(other), "--key-file",
              str(key), ok=False)
    assert res.exit_code == 2 and "does not match document" in said(res)
    res = run("evidence", "sign", "--user", "oscar", "--document", str(doc_id), "--key-file", str(key), ok=False)
    assert "not registered for 'oscar'" in said(res)
    res = run("evidence", "sign", "--user", "oscar", "--application", "app-jfb-cqyz", "--key-file", str(key),
              ok=False)
    assert "not district staff" in said(res)
    monkeypatch.setenv("RETROFIT_KEY_PASSPHRASE", "the wrong passphrase")
    res = run("evidence", "sign", "--user", "dora", "--document", str(doc_id), "--key-file", str(key), ok=False)
    assert "passphrase" in said(res) and "the wrong passphrase" not in said(res)
    monkeypatch.delenv("RETROFIT_KEY_PASSPHRASE")
    res = run("evidence", "keygen", "oscar", "--out", str(tmp_path / "o.pem"), ok=False)
    assert "RETROFIT_KEY_PASSPHRASE" in said(res) and not (tmp_path / "o.pem").exists()


def test_signing_key_from_the_environment(signed: tuple[ApiEnv, Path, int], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization

    _, _, doc_id = signed
    enc = (tmp_path / "keys" / "dora.pem").read_bytes()
    key = serialization.load_pem_private_key(enc, PASS.encode())
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    monkeypatch.delenv("RETROFIT_KEY_PASSPHRASE")
    monkeypatch.setenv("RETROFIT_SIGNING_KEY", plain)
    run("evidence", "sign", "--user", "dora", "--document", str(doc_id))
    assert "3 signatures" in said(run("evidence", "verify"))
