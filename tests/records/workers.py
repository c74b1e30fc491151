"""Writers for the concurrency tests, each run in its own process (multiprocessing "spawn": its own interpreter,
its own engine and connections), released together by a barrier once every one is ready: the collector raising
and clearing alarms, the dashboard acknowledging them, the subsidy office recording payments, the API appending
audit rows."""

from __future__ import annotations

import datetime as dt
import os
import time
from multiprocessing.synchronize import Barrier
from typing import Any

PAID_ON = dt.date(2026, 12, 20)


def collector(url: str, start: Barrier, building: str, n: int, clear_every: int) -> dict[str, Any]:
    """Raise ``n`` alarms (one per subject) in small batches, then clear every ``clear_every``-th one."""
    from rules.alarms import AlarmBook
    from tests.seed import alarm_event

    book = AlarmBook(url)
    start.wait()
    t0 = time.time()
    raised = cleared = 0
    for i in range(0, n, 5):
        out = book.apply([alarm_event("raise", "co-high", building, f"sensor-{j}", t0 + j, "safety", "critical")
                          for j in range(i, min(i + 5, n))])
        raised += sum(1 for a in out if a.event == "raised")
    for j in range(0, n, clear_every):
        out = book.apply([alarm_event("clear", "co-high", building, f"sensor-{j}", t0 + n + j, "safety")])
        cleared += sum(1 for a in out if a.event == "cleared")
    book.close()
    return {"raised": raised, "cleared": cleared}


def dashboard(url: str, start: Barrier, user: str, expected: int, deadline_s: float) -> dict[str, Any]:
    """Acknowledge every raised alarm it sees until all ``expected`` alarms exist and none is left raised."""
    from rules.alarms import AlarmBook, AlarmError

    book = AlarmBook(url)
    start.wait()
    acked, refused, end = 0, 0, time.monotonic() + deadline_s
    while time.monotonic() < end:
        raised = book.list(state="raised", limit=10_000)
        for a in raised:
            try:
                book.acknowledge(a.id, user, comment="checked on site")
                acked += 1
            except AlarmError:
                refused += 1
        if not raised and len(book.list(limit=10_000)) >= expected:
            break
        time.sleep(0.05)
    book.close()
    return {"acked": acked, "refused": refused}


def payer(url: str, start: Barrier, application: str, tranche: int, amount: float, attempts: int) -> dict[str, Any]:
    """Try to record ``attempts`` payments; the cap refuses those beyond what the application may receive."""
    from buildings.records import make_engine, session_factory
    from buildings.records.program import PaymentError, record_payment

    engine = make_engine(url)
    sf = session_factory(engine)
    start.wait()
    paid = refused = 0
    for _ in range(attempts):
        try:
            with sf.begin() as s:
                record_payment(s, application, tranche, amount, PAID_ON, f"payer-{os.getpid()}")
            paid += 1
        except PaymentError:
            refused += 1
    engine.dispose()
    return {"paid": paid, "refused": refused}


def auditor(url: str, start: Barrier, actor: str, n: int) -> dict[str, Any]:
    """Append ``n`` audit rows the way the API does (append and seal in one transaction)."""
    from api.evidence import append_audit
    from buildings.records import make_engine

    engine = make_engine(url)
    start.wait()
    for i in range(n):
        append_audit(engine, actor, "read", "api", f"/api/v1/buildings?page={i}")
    engine.dispose()
    return {"appended": n}


def batch_auditor(url: str, start: Barrier, actor: str, batches: int, per_batch: int) -> dict[str, Any]:
    """Append audit rows the way the programme commands do (several rows a transaction, not sealed), sealing
    only now and then: the other writer's seals must never skip these rows."""
    from api.evidence import seal
    from buildings.records import make_engine, session_factory
    from buildings.records.program import audit

    engine = make_engine(url)
    sf = session_factory(engine)
    start.wait()
    for b in range(batches):
        with sf.begin() as s:
            for i in range(per_batch):  # a long transaction, like an import: rows written, work, more rows
                audit(s, actor, "update", "building", f"b-{b}", "note", None, i)
                s.flush()
                time.sleep(0.01)
        if b % 5 == 4:
            with sf.begin() as s:
                seal(s)
    engine.dispose()
    return {"appended": batches * per_batch}


def half_written(url: str, ready_path: str, application: str, amount: float) -> None:
    """Record a payment and file a document in one transaction, flush them (rows, locks and the audit chain held
    in the database), say so, and wait to be killed before the commit."""
    from buildings.records import make_engine, session_factory
    from buildings.records.program import add_document, record_payment

    engine = make_engine(url)
    s = session_factory(engine)()
    s.begin()
    record_payment(s, application, 2, amount, PAID_ON, "doomed")
    add_document(s, "jfb-2024-smart-green", "payment_order", "支付凭证", content=b"never committed", actor="doomed")
    s.flush()
    with open(ready_path, "w", encoding="utf-8") as fh:
        fh.write("flushed")
    time.sleep(600)  # killed here, mid-transaction


def run_job(name: str, results: Any, index: int, *args: Any) -> None:
    """Process entry point: run the named writer and put (index, result or the traceback) on ``results``."""
    import traceback

    try:
        results.put((index, globals()[name](*args), None))
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        results.put((index, None, traceback.format_exc()))


def run_together(jobs: list[tuple[str, tuple]], timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """Start every job in its own process, release them at once, and return their results in order; a job that
    raised or did not finish fails with its traceback."""
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(len(jobs)), ctx.Queue()  # each writer waits there once it is ready to write
    procs = [ctx.Process(target=run_job, args=(name, results, i, args[0], start, *args[1:]), daemon=True)
             for i, (name, args) in enumerate(jobs)]
    for p in procs:
        p.start()
    out: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < len(jobs):
            try:
                i, result, error = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue_mod.Empty:
                raise AssertionError(f"writers did not finish in {timeout_s:.0f} s: "
                                     f"{[jobs[i][0] for i in range(len(jobs)) if i not in out]}") from None
            if error:
                raise AssertionError(f"writer {jobs[i][0]} failed:\n{error}")
            out[i] = result
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return [out[i] for i in range(len(jobs))]
