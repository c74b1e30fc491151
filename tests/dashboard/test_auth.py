"""Users, password hashing, throttling (persisted across restarts) and the `retrofit users` commands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from buildings.records.base import make_engine
from dashboard.auth import AuthError, Role, ThrottlePolicy, add_user, authenticate, list_users, set_disabled
from retrofit.cli import app

PW = "a-long-enough-password"


@pytest.fixture()
def engine(tmp_path: Path):
    e = make_engine(f"sqlite:///{tmp_path / 'records.db'}")
    yield e
    e.dispose()


def test_password_is_hashed_with_argon2_and_verifies(engine) -> None:
    add_user(engine, "alice", PW, "owner", "owner-a")
    with engine.connect() as c:
        stored = c.execute(text("SELECT password_hash FROM users WHERE username='alice'")).scalar_one()
    assert stored.startswith("$argon2id$") and PW not in stored
    ok = authenticate(engine, "alice", PW, "10.0.0.1")
    assert ok.principal is not None and ok.principal.role is Role.OWNER and ok.principal.owner_id == "owner-a"
    assert authenticate(engine, "alice", PW + "x", "10.0.0.1").principal is None
    assert authenticate(engine, "nobody", PW, "10.0.0.1").principal is None


@pytest.mark.parametrize(("args", "msg"), [
    (("x", PW, "owner", "o"), "user name"),
    (("bob", PW, "owner", None), "--owner"),
    (("bob", PW, "district", "o"), "only for owner"),
    (("bob", PW, "admin", None), "role"),
    (("bob", "short", "district", None), "at least"),
])
def test_bad_users_are_refused(engine, args, msg) -> None:
    with pytest.raises(AuthError, match=msg):
        add_user(engine, *args)
    assert list_users(engine) == []


def test_unknown_owner_refused_and_duplicate_refused(engine) -> None:
    with pytest.raises(AuthError, match="not in the site"):
        add_user(engine, "bob", PW, "owner", "ghost", known_owners={"owner-a"})
    add_user(engine, "bob", PW, "district")
    with pytest.raises(AuthError, match="already exists"):
        add_user(engine, "bob", PW, "district")


def test_disabled_user_cannot_sign_in(engine) -> None:
    add_user(engine, "dora", PW, "district")
    set_disabled(engine, "dora")
    assert authenticate(engine, "dora", PW, "c").principal is None
    set_disabled(engine, "dora", False)
    assert authenticate(engine, "dora", PW, "c").principal is not None


def test_throttle_per_user_survives_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    e = make_engine(url)
    add_user(e, "alice", PW, "owner", "owner-a")
    policy = ThrottlePolicy(user_max=3, client_max=100, lock_s=60)
    now = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    for i in range(3):
        r = authenticate(e, "alice", "wrong-password", f"client-{i}", policy, now)
        assert r.principal is None and r.locked_for_s == 0
    e.dispose()
    e = make_engine(url)  # a restarted dashboard: the lock is in the database, not in memory
    locked = authenticate(e, "alice", PW, "client-9", policy, now + dt.timedelta(seconds=5))
    assert locked.principal is None and 50 <= locked.locked_for_s <= 61  # even the right password is refused
    later = authenticate(e, "alice", PW, "client-9", policy, now + dt.timedelta(seconds=70))
    assert later.principal is not None
    e.dispose()


def test_throttle_per_client_across_user_names(engine) -> None:
    add_user(engine, "bob", PW, "district")
    policy = ThrottlePolicy(user_max=100, client_max=4, lock_s=120)
    now = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    for i in range(4):
        authenticate(engine, f"guess{i}", "nope-nope-nope", "6.6.6.6", policy, now)
    assert authenticate(engine, "bob", PW, "6.6.6.6", policy, now).locked_for_s > 0
    assert authenticate(engine, "bob", PW, "7.7.7.7", policy, now).principal is not None


def test_failures_outside_window_do_not_accumulate(engine) -> None:
    add_user(engine, "bob", PW, "district")
    policy = ThrottlePolicy(user_max=3, client_max=100, window_s=600)
    t0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    for i in range(2):
        authenticate(engine, "bob", "wrong-wrong", "c", policy, t0 + dt.timedelta(seconds=i))
    authenticate(engine, "bob", "wrong-wrong", "c", policy, t0 + dt.timedelta(seconds=700))
    assert authenticate(engine, "bob", PW, "c", policy, t0 + dt.timedelta(seconds=701)).principal is not None


def test_users_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_site_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETROFIT_CONFIG", raising=False)
    monkeypatch.setenv("RETROFIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETROFIT_SITE", str(sample_site_path))
    runner = CliRunner()
    monkeypatch.setenv("RETROFIT_NEW_PASSWORD", PW)
    r = runner.invoke(app, ["users", "add", "--role", "district", "dora"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", "--role", "owner", "--owner", "no-such-owner", "olga"])
    assert r.exit_code == 2 and "not in the site" in r.output
    monkeypatch.delenv("RETROFIT_NEW_PASSWORD")
    r = runner.invoke(app, ["users", "add", "--role", "technician", "tom"], input=f"{PW}\n{PW}\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "disable", "tom"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["users", "list"])
    assert r.exit_code == 0
    lines = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.strip()}
    assert "district" in lines["dora"] and "active" in lines["dora"] and "disabled" in lines["tom"]
    assert "argon2" not in r.output and PW not in r.output
    r = runner.invoke(app, ["users", "disable", "ghost"])
    assert r.exit_code == 2 and "no user" in r.output
    assert "Example:" in runner.invoke(app, ["users", "add", "--help"]).output
    assert "Example:" in runner.invoke(app, ["dashboard", "--help"]).output
