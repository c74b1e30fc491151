"""The other areas' records on both databases: dashboard users and sign-in throttling, API tokens, owners'
contacts, signing keys and signatures, alarms and maintenance windows. The same calls the dashboard, the API and
the rules make, on SQLite and on PostgreSQL (timestamps with time zones, booleans, JSON, unique indexes)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from buildings.records import make_engine
from tests.seed import alarm_event


@pytest.fixture()
def engine(db_url: str):
    e = make_engine(db_url)
    yield e
    e.dispose()


def test_users_sign_in_and_lockout(engine) -> None:
    from buildings.access import AuthError, ThrottlePolicy, add_user, authenticate, list_users, set_disabled

    add_user(engine, "dora", "correct horse battery", "district")
    add_user(engine, "oscar", "correct horse battery", "owner", "yuxin-property")
    with pytest.raises(AuthError, match="already exists"):
        add_user(engine, "dora", "correct horse battery", "district")
    assert authenticate(engine, "dora", "correct horse battery", "10.0.0.1").principal.role.value == "district"
    policy = ThrottlePolicy(user_max=3, client_max=100, lock_s=60, lock_max_s=600)
    now = dt.datetime.now(dt.UTC)
    for _ in range(3):
        assert authenticate(engine, "oscar", "wrong", "10.0.0.2", policy, now).principal is None
    locked = authenticate(engine, "oscar", "correct horse battery", "10.0.0.2", policy, now)
    assert locked.principal is None and locked.locked_for_s > 0  # locked out even with the right password
    later = authenticate(engine, "oscar", "correct horse battery", "10.0.0.2", policy, now + dt.timedelta(hours=1))
    assert later.principal is not None
    set_disabled(engine, "oscar")
    assert authenticate(engine, "oscar", "correct horse battery", "10.0.0.3").principal is None
    assert [u.username for u in list_users(engine)] == ["dora", "oscar"]


def test_api_tokens_expire_and_revoke(engine) -> None:
    from api.tokens import authenticate, create_token, list_tokens, revoke_token

    rec, token = create_token(engine, "municipal platform", "district", days=30, pii=True)
    p = authenticate(engine, token)
    assert p is not None and p.pii and p.principal.role.value == "district"
    old, old_text = create_token(engine, "old", "owner", days=1, owner_id="yuxin-property",
                                 now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    assert authenticate(engine, old_text) is None and old.state() == "expired"
    assert authenticate(engine, token[:-2] + "xx") is None
    revoke_token(engine, rec.id)
    assert authenticate(engine, token) is None
    assert {t.id: t.state() for t in list_tokens(engine)} == {rec.id: "revoked", old.id: "expired"}


def test_owner_contacts_replace_all_or_nothing(engine) -> None:
    from api.pii import ContactError, contacts_by_owner, import_contacts

    csv = ("owner_id,contact_name,id_number,phone\n"
           "f03-individuals,王小明,500103198001011234,13812345678\n")
    assert import_contacts(engine, csv) == 1
    assert import_contacts(engine, csv.replace("王小明", "李华")) == 1
    with pytest.raises(ContactError, match="nothing was imported"):
        import_contacts(engine, csv + "f03-individuals,张三,123,\n")
    got = contacts_by_owner(engine, ["f03-individuals"])["f03-individuals"]
    assert [c.contact_name for c in got] == ["李华"]


def test_keys_signatures_and_the_chain(engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.evidence import checkpoint, generate_key, load_private_key, sign_application, verify_all
    from buildings.access import add_user
    from buildings.records.program import import_sample
    from buildings.site import load_site
    from tests.records.conftest import ROOT

    url = engine.url.render_as_string(hide_password=False)
    import_sample(url, load_site(str(ROOT / "buildings" / "sites" / "yuzhong")), "tests").dispose()
    add_user(engine, "dora", "correct horse battery", "district")
    monkeypatch.setenv("RETROFIT_KEY_PASSPHRASE", "a long enough passphrase")
    generate_key(engine, "dora", tmp_path / "dora.pem", "a long enough passphrase")
    key = load_private_key(tmp_path / "dora.pem")
    sig = sign_application(engine, "app-jfb-cqyz", "dora", key)
    assert checkpoint(engine, "dora", key) is not None
    report = verify_all(engine)
    assert report.ok, report.problems
    assert report.checked["signatures"] == 2 and report.checked["audit_rows"] > 20
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subsidy_applications SET assessed_amount = 9999999 WHERE id = 'app-jfb-cqyz'")
    report = verify_all(engine)
    assert any(f"signature {sig.id}" in p and "assessed_amount" in p for p in report.problems)


def test_alarms_one_open_per_subject_and_maintenance(db_url: str, sf: sessionmaker) -> None:
    from rules.alarms import Alarm, AlarmBook

    book = AlarmBook(db_url)
    t0 = time.time()
    book.suppress("huaxin-building", t0 - 60, t0 + 3600, reason="chiller overhaul", user="tech")
    out = book.apply([alarm_event("raise", "ahu-sat-high", "huaxin-building", "ahu-2", t0),
                      alarm_event("raise", "ahu-sat-high", "huaxin-building", "ahu-2", t0 + 60),
                      alarm_event("raise", "co-high", "huaxin-building", "b1", t0 + 60, "safety", "critical")])
    assert [a.event for a in out] == ["raised", "retriggered", "raised"]
    energy, safety = out[0].alarm, out[2].alarm
    assert energy.suppressed and not safety.suppressed and safety.during_maintenance
    assert [a.id for a in book.list()] == [safety.id] and len(book.list(include_suppressed=True)) == 2
    assert book.get(energy.id).retriggers == 1 and book.get(energy.id).values == {"value": 1.0}
    with pytest.raises(IntegrityError), sf.begin() as s:  # the database keeps one open alarm per subject
        s.add(Alarm(rule="co-high", building="huaxin-building", equipment="b1", subject="b1", family="safety",
                    severity="critical", state="raised", raised_at=t0, last_triggered_at=t0,
                    open_key="co-high|huaxin-building|b1"))
    book.apply([alarm_event("clear", "co-high", "huaxin-building", "b1", t0 + 120, "safety", "critical")])
    assert book.counts() == {} and book.get(safety.id).state == "cleared"
    book.close()
