"""Concurrent writers on the records database, on SQLite and on PostgreSQL: real processes with their own
connections (tests/records/workers.py). Nothing is lost (alarms, acknowledgements, payments, audit rows), the
payment cap holds when two payments race, an acknowledgement never undoes a clear, two audit writers never fork
the hash chain, and a transaction cut off by a kill or an exception leaves nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import sessionmaker

from api.evidence import Report, append_audit, seal, verify_chain
from buildings.records import make_engine, session_factory
from buildings.records.models import AuditLog, Document, Payment
from buildings.records.program import PaymentError, add_document, record_payment
from rules.alarms import Alarm, AlarmBook
from tests.records.workers import PAID_ON, run_together
from tests.seed import alarm_event

APP = "app-jfb-cqyz"  # jiefangbei-tower: may receive 1,380,000; 552,000 paid, tranche 2 (828,000) payable
REMAINING = 828_000.0


def _count(sf: sessionmaker, model: type, *where: object) -> int:
    with sf() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _chain(sf: sessionmaker) -> Report:
    """Seal what is left, then verify the whole chain."""
    with sf.begin() as s:
        seal(s)
    report = Report()
    with sf() as s:
        verify_chain(s, report)
    return report


def test_six_writers_at_once_lose_nothing(loaded: sessionmaker, loaded_url: str) -> None:
    """Two collectors raise and clear alarms while the dashboard acknowledges them, two subsidy clerks record
    payments on one application and the API appends audit rows: six processes, one database."""
    n, clear_every = 40, 3
    audit_before = _count(loaded, AuditLog)
    paid_before = _count(loaded, Payment)
    c1, c2, dash, pay_a, pay_b, api = run_together([
        ("collector", (loaded_url, "jiefangbei-tower", n, clear_every)),
        ("collector", (loaded_url, "huaxin-building", n, clear_every)),
        ("dashboard", (loaded_url, "dora", 2 * n, 240.0)),
        ("payer", (loaded_url, APP, 2, 20_700.0, 25)),
        ("payer", (loaded_url, APP, 2, 20_700.0, 25)),
        ("auditor", (loaded_url, "api:token-1", 40)),
    ])
    # every alarm raised is there, once; every clear stayed a clear; every acknowledgement is recorded
    assert c1["raised"] == c2["raised"] == n
    cleared = len(range(0, n, clear_every))
    assert c1["cleared"] == c2["cleared"] == cleared
    with loaded() as s:
        alarms = list(s.scalars(select(Alarm)))
    assert len(alarms) == 2 * n and len({(a.building, a.subject) for a in alarms}) == 2 * n
    assert sum(a.state == "cleared" for a in alarms) == 2 * cleared
    assert all(a.state == "cleared" for a in alarms if a.cleared_at is not None)
    assert all(a.state == "acknowledged" and a.acked_by == "dora" for a in alarms if a.cleared_at is None)
    assert sum(a.acked_by == "dora" for a in alarms) == dash["acked"]
    # the payments: exactly what the cap allows (40 x 20,700 = 828,000), the rest refused, none lost
    assert pay_a["paid"] + pay_b["paid"] == REMAINING / 20_700
    assert pay_a["refused"] + pay_b["refused"] == 50 - REMAINING / 20_700
    assert _count(loaded, Payment) == paid_before + 40
    with loaded() as s:
        total = s.scalar(select(func.sum(Payment.amount)).where(Payment.application_id == APP))
    assert total == pytest.approx(1_380_000, abs=0.001)
    # every audit row: one per payment, one per API request, and the chain is whole
    assert _count(loaded, AuditLog) == audit_before + 40 + api["appended"]
    assert _count(loaded, AuditLog, AuditLog.entity == "payment", AuditLog.actor.like("payer-%")) == 40
    report = _chain(loaded)
    assert report.ok, report.problems
    assert report.checked["audit_rows"] == audit_before + 80


def test_two_audit_writers_never_fork_the_chain(loaded: sessionmaker, loaded_url: str) -> None:
    """The API seals after every row while the programme commands append batches unsealed: a seal must never
    chain past a row another transaction has not committed yet (that row would be left out of the chain)."""
    before = _count(loaded, AuditLog)
    api, batches = run_together([("auditor", (loaded_url, "api:token-1", 60)),
                                 ("batch_auditor", (loaded_url, "cli", 30, 4))])
    report = _chain(loaded)
    assert report.ok, report.problems
    assert report.checked["audit_rows"] == _count(loaded, AuditLog) == before + api["appended"] + batches["appended"]
    with loaded() as s:
        hashes = s.scalars(select(AuditLog.prev_hash)).all()
    assert len(set(hashes)) == len(hashes)  # each row follows a different one: one line, no fork


def test_two_payments_at_once_cannot_both_pass_the_cap(loaded: sessionmaker) -> None:
    """Clerk A has recorded 500,000 but not committed; clerk B's 500,000 waits for A, then sees it and is refused
    (without the lock both read 552,000 paid and both pass: 1,552,000 paid on a 1,380,000 cap)."""
    a = loaded()
    a.begin()
    record_payment(a, APP, 2, 500_000, PAID_ON, "clerk-a")
    a.flush()
    outcome: dict[str, object] = {}

    def clerk_b() -> None:
        try:
            with loaded.begin() as s:
                record_payment(s, APP, 2, 500_000, PAID_ON, "clerk-b")
            outcome["b"] = "paid"
        except PaymentError as exc:
            outcome["b"] = exc

    t = threading.Thread(target=clerk_b)
    t.start()
    time.sleep(1.5)
    assert t.is_alive(), f"clerk B did not wait for clerk A's payment: {outcome}"
    a.commit()
    a.close()
    t.join(timeout=60)
    assert isinstance(outcome.get("b"), PaymentError) and "beyond the 1,380,000.00" in str(outcome["b"])
    with loaded() as s:
        assert s.scalar(select(func.sum(Payment.amount)).where(Payment.application_id == APP)) == 1_052_000


def test_an_acknowledgement_never_undoes_a_clear(loaded_url: str) -> None:
    """The collector has cleared an alarm but not committed when the operator acknowledges it: the ack waits,
    then records who acknowledged on the cleared alarm (without the lock it read "raised" and wrote
    "acknowledged" over the clear: an alarm open forever that nothing would clear again)."""
    book = AlarmBook(loaded_url)
    t0 = time.time()
    alarm = book.apply([alarm_event("raise", "co-high", "jiefangbei-tower", "b1-carpark", t0, "safety")])[0].alarm
    engine = make_engine(loaded_url)
    collector = session_factory(engine)()
    collector.begin()
    collector.execute(text("UPDATE alarm SET state = 'cleared', cleared_at = :t, open_key = NULL WHERE id = :id"),
                      {"t": t0 + 60, "id": alarm.id})
    outcome: dict[str, object] = {}
    t = threading.Thread(target=lambda: outcome.update(a=book.acknowledge(alarm.id, "dora", "on my way")))
    t.start()
    time.sleep(1.5)
    assert t.is_alive(), "the acknowledgement did not wait for the clear in progress"
    collector.commit()
    collector.close()
    t.join(timeout=60)
    got = book.get(alarm.id)
    assert got.state == "cleared" and got.cleared_at == t0 + 60 and got.acked_by == "dora"
    book.close()
    engine.dispose()


def test_a_killed_writer_leaves_nothing_half_written(loaded: sessionmaker, loaded_url: str, tmp_path: Path) -> None:
    """A process that recorded a payment and filed a document (rows flushed, row and chain locks held) is killed
    before its commit: none of it is there, and the next writer gets the locks at once."""
    before = {m.__name__: _count(loaded, m) for m in (Payment, Document, AuditLog)}
    ready = tmp_path / "ready"
    code = ("import sys; from tests.records.workers import half_written; "
            "half_written(sys.argv[1], sys.argv[2], 'app-jfb-cqyz', 100000.0)")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", code, loaded_url, str(ready)], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, "the writer ended before it had written"
            assert time.monotonic() < deadline, "the writer did not get to its flush"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert {m.__name__: _count(loaded, m) for m in (Payment, Document, AuditLog)} == before
    t = time.monotonic()
    append_audit(make_engine(loaded_url), "api:token-1", "read", "api", "/api/v1/alarms")
    with loaded.begin() as s:
        record_payment(s, APP, 2, 100_000, PAID_ON, "next")
    assert time.monotonic() - t < 15, "the killed writer's locks were held on"
    assert _chain(loaded).ok


def test_an_exception_mid_transaction_leaves_nothing_half_written(loaded: sessionmaker) -> None:
    before = {m.__name__: _count(loaded, m) for m in (Payment, Document, AuditLog)}
    with pytest.raises(RuntimeError, match="printer on fire"), loaded.begin() as s:
        record_payment(s, APP, 2, 100_000, PAID_ON, "clerk")
        add_document(s, "jfb-2024-smart-green", "payment_order", "支付凭证", content=b"order", actor="clerk")
        s.flush()
        raise RuntimeError("printer on fire")
    assert {m.__name__: _count(loaded, m) for m in (Payment, Document, AuditLog)} == before
