"""The records database: Alembic migration, loading the sample programme, the hand-checked eligibility table,
refusals that leave nothing written, the append-only audit log, export/import round trips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from buildings.records import Base, make_engine, session_factory
from buildings.records import queries as q
from buildings.records.migrate import current, head, upgrade
from buildings.records.models import (
    PROGRAM_TABLES,
    AuditLog,
    AuditLogImmutable,
    Milestone,
    OwnershipShare,
    Payment,
    RetrofitProject,
)
from buildings.records.program import (
    PaymentError,
    ProgramError,
    add_document,
    complete_milestone,
    export_csv,
    export_program,
    import_all,
    import_shares_csv,
    load_program_file,
    load_projects,
    record_payment,
    write_yaml,
)
from buildings.retrofit import MilestoneError
from tests.records.conftest import AS_OF, PROGRAMME
from tests.recordsdb import RecordsDatabases

# Hand-checked (see docs/program.md "sample eligibility"): verdict and capped amount in CNY on 2026-11-26.
#  jiefangbei: single owner, 1996, 42,000 m2, measured 22.4 % (adequate) -> band 20-30 % -> 42,000 x 30
#              = 1,260,000 + 20 % of fire-IoT 600,000 = 120,000 -> 1,380,000 (caps 3 M, 30 % x 9.65 M, 4 M/owner)
#  huaxin:     fragmented (160 owners), no unified operator, no measured savings -> not yet;
#              21,800 x 20 (target 16 %) + 20 % x 770,000 = 590,000, capped at 30 % x 1,650,000 = 495,000
#  daping:     concentrated (2 owners), vote passed, measured 12 % not adequate -> not yet; 8,600 x 20 = 172,000
#  chaotianmen: no project yet -> not yet, amount unknown
#  CN central programme closed 2017; Shanghai, Xuhui and Singapore policies are outside their jurisdiction.
YZ = "CQ-YZ-OLDBLDG-SMART-DEMO"
EXPECTED = {
    ("jiefangbei-tower", YZ): ("eligible", 1_380_000),
    ("huaxin-building", YZ): ("not_yet", 495_000),
    ("daping-makerworks", YZ): ("not_yet", 172_000),
    ("chaotianmen-harbour", YZ): ("not_yet", None),
    **{(b, p): ("not_eligible", None)
       for b in ("jiefangbei-tower", "huaxin-building", "daping-makerworks", "chaotianmen-harbour")
       for p in ("CN-MOF-MOHURD-2011-PBR", "SH-2016-EXIST-PUB", "SH-XUHUI-2022-MATCH", "SG-BCA-GMIS-EB-2.0")},
}


def _counts(s: Session) -> dict[str, int]:
    return {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in PROGRAM_TABLES}


def test_alembic_migration_matches_models(db_url: str) -> None:
    assert current(db_url) == head()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(t in str(d) for t in PROGRAM_TABLES)]
    assert ours == [], ours
    upgrade(db_url)  # idempotent


def test_create_all_database_is_adopted(records_url: str) -> None:
    engine = make_engine(records_url)
    Base.metadata.create_all(engine)
    engine.dispose()
    upgrade(records_url)
    assert current(records_url) == head()


def test_sample_programme_loaded(session: Session) -> None:
    c = _counts(session)
    assert c["buildings"] == 4 and c["retrofit_projects"] == 3 and c["subsidy_policies"] == 5
    assert c["payments"] == 2 and c["owner_votes"] == 15 and c["audit_log"] > 20
    # the 'all owners in common' row is shared parts, not an exclusive share
    shares = session.scalars(select(OwnershipShare).where(OwnershipShare.building_id == "huaxin-building")).all()
    assert "common-parts" not in {s.owner_id for s in shares}


def test_ownership_of_sample_buildings(session: Session) -> None:
    own = {b: q.ownership(session, b) for b in ("jiefangbei-tower", "huaxin-building", "daping-makerworks",
                                                 "chaotianmen-harbour")}
    assert own["jiefangbei-tower"]["structure_class"] == "single" and own["jiefangbei-tower"]["hhi"] == 1
    assert own["daping-makerworks"]["structure_class"] == "concentrated"
    assert own["chaotianmen-harbour"]["structure_class"] == "concentrated"
    hx = own["huaxin-building"]
    assert hx["structure_class"] == "fragmented" and hx["owner_count"] == 160
    assert hx["top_share"] == pytest.approx(3600 / 20110, abs=1e-4)
    assert q.buildings_for_owner(session, "f03-individuals")[0]["share"] == pytest.approx(820 / 20110)


def test_huaxin_vote_hand_checked(session: Session) -> None:
    st = q.project_status(session, building_id="huaxin-building")[0]
    v = st["vote"]
    # 126 of 160 owners voted; area 16,606.2 of 20,110 m2; for: 106 owners, 14,521.7 m2
    assert v["quorum"] and v["approved"]
    assert v["headcount_participation"] == pytest.approx(126 / 160, abs=1e-4)
    assert v["area_participation"] == pytest.approx(16606.2 / 20110, abs=1e-4)
    assert v["headcount_approval"] == pytest.approx(106 / 126, abs=1e-4)
    assert v["area_approval"] == pytest.approx(14521.7 / 16606.2, abs=1e-4)


def test_eligibility_table_hand_checked(session: Session) -> None:
    rows = q.eligibility_matrix(session, AS_OF)
    got = {(r["building_id"], r["policy_id"]): (r["verdict"], r["amount"]) for r in rows}
    assert set(got) == set(EXPECTED)
    for key, (verdict, amount) in EXPECTED.items():
        assert got[key][0] == verdict, (key, got[key])
        assert got[key][1] == (None if amount is None else pytest.approx(amount)), (key, got[key])


def test_eligibility_explains_itself(session: Session) -> None:
    e = q.eligibility(session, "jiefangbei-tower", YZ, as_of=AS_OF)
    sv = next(c for c in e.conditions if c.field == "savings.measured_pct")
    assert sv.status == "pass" and "baseline 2024-07-01..2025-06-30" in sv.evidence and "5P" in sv.evidence
    assert sv.provenance.startswith("sourced")
    assert e.amount.final and [t.status for t in e.tranches] == ["paid", "payable"]
    hx = q.eligibility(session, "huaxin-building", YZ, as_of=AS_OF)
    assert any("unified_operator_id" in m for m in hx.missing)
    assert any(m.startswith("savings.measured_pct: no data") for m in hx.missing)
    assert not hx.amount.final and "capped from 590,000 to 495,000" in " ".join(hx.amount.lines)
    dp = q.eligibility(session, "daping-makerworks", YZ, as_of=AS_OF)
    assert "savings.adequate: needs == True, has False" in dp.missing
    # the central programme in its own time: Chongqing was a key city, but no platform data yet
    old = q.eligibility(session, "jiefangbei-tower", "CN-MOF-MOHURD-2011-PBR", as_of=dt.date(2015, 6, 1))
    assert old.verdict == "not_yet" and old.amount.capped == pytest.approx(840_000)
    assert old.missing == ["building.monitoring.months_reporting: needs >= 2, has 0.0"]


def test_missing_conditions_are_to_dos_with_who_acts(session: Session) -> None:
    """What is missing, as message keys with parameters: the action, who acts and where the evidence is; a fixed
    fact that rules a policy out is a reason, not a task; the evidence of each condition is a message too."""
    from buildings.subsidy.messages import TEXT, Msg

    old = q.eligibility(session, "jiefangbei-tower", "CN-MOF-MOHURD-2011-PBR", as_of=dt.date(2015, 6, 1))
    (todo,) = old.todo
    assert todo.msg == Msg("todo.months_reporting", {"field": "building.monitoring.months_reporting", "need": 2,
                                                     "has": 0.0})
    assert (todo.actor, todo.page, todo.fixed) == ("owner", "energy", False)
    assert str(todo) == "upload at least 2 months of meter data to the platform (now 0.0)"
    hx = q.eligibility(session, "huaxin-building", YZ, as_of=AS_OF)
    keys = {t.msg.key: t for t in hx.todo}
    assert keys["todo.measured_savings_none"].actor == "technician" and "todo.unified_operator" in keys
    alternatives = [t for t in hx.todo if t.group is not None]
    assert len({t.branch for t in alternatives}) >= 2  # an any-of: one branch is enough
    closed = q.eligibility(session, "jiefangbei-tower", "CN-MOF-MOHURD-2011-PBR", as_of=AS_OF)
    assert closed.verdict == "not_eligible" and closed.todo and all(t.fixed and t.actor is None for t in closed.todo)
    assert "todo.policy_closed" in {t.msg.key for t in closed.todo}
    for c in hx.conditions:
        assert c.evidence_msg is not None and c.evidence_msg.key in TEXT and str(c.evidence_msg) == c.evidence
    d = hx.as_dict()
    assert d["todo"][0]["key"].startswith("todo.") and d["conditions"][0]["evidence_msg"]["key"].startswith("ev.")


def test_payment_beyond_cap_refused_nothing_written(loaded: sessionmaker) -> None:
    with loaded() as s:
        before = _counts(s)
    with pytest.raises(PaymentError, match="beyond the 1,380,000.00 it may receive"), loaded.begin() as s:
        record_payment(s, "app-jfb-cqyz", 2, 900_000, dt.date(2026, 12, 20), "test")
    with pytest.raises(PaymentError, match="stage mv not complete|not due"), loaded.begin() as s:
        record_payment(s, "app-dp-cqyz", 2, 1000, dt.date(2026, 12, 20), "test")
    with pytest.raises(PaymentError, match="tranche 1 to"), loaded.begin() as s:
        record_payment(s, "app-dp-cqyz", 1, 1000, dt.date(2026, 12, 20), "test")  # tranche 1 already fully paid
    with loaded() as s:
        assert _counts(s) == before
    with loaded.begin() as s:
        record_payment(s, "app-jfb-cqyz", 2, 828_000, dt.date(2026, 12, 20), "test")
    with pytest.raises(PaymentError, match="beyond"), loaded.begin() as s:
        record_payment(s, "app-jfb-cqyz", 2, 0.5, dt.date(2026, 12, 21), "test")
    with loaded() as s:
        assert sum(p["amount"] for p in q.payments(s, building_id="jiefangbei-tower")) == pytest.approx(1_380_000)
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.entity == "payment")) == 3


def test_milestone_out_of_order_refused_nothing_written(loaded: sessionmaker) -> None:
    with loaded() as s:
        before = _counts(s)
    with pytest.raises(MilestoneError, match="out of order"), loaded.begin() as s:
        complete_milestone(s, "hx-2026-public-areas", "Main equipment purchased", dt.date(2027, 1, 5), "owner", "t")
    with pytest.raises(MilestoneError, match="expert_review_minutes"), loaded.begin() as s:
        complete_milestone(s, "hx-2026-public-areas", "Owners' vote and expert review", dt.date(2026, 12, 15),
                           "bureau", "t")
    with loaded() as s:
        assert _counts(s) == before
    with loaded.begin() as s:
        add_document(s, "hx-2026-public-areas", "expert_review_minutes", "专家评审意见", content=b"minutes", actor="t")
        complete_milestone(s, "hx-2026-public-areas", "Owners' vote and expert review", dt.date(2026, 12, 15),
                           "district housing bureau", "t")
    with loaded() as s:
        st = q.project_status(s, project_id="hx-2026-public-areas")[0]
        assert st["stage"] == "procurement" and st["progress"] == pytest.approx(0.26)


def test_programme_file_with_out_of_order_milestone_writes_nothing(sf: sessionmaker, sample_site, policies,
                                                                    tmp_path: Path) -> None:
    bad = PROGRAMME.read_text(encoding="utf-8").replace(
        "{stage: design, name: Retrofit plan and reviewed drawings, actual: 2025-05-20, "
        "signed_off_by: design institute}",
        "{stage: design, name: Retrofit plan and reviewed drawings, planned: 2025-05-20}")
    path = tmp_path / "bad.yaml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ProgramError, match="project dp-2025-led-vfd.*out of order"), sf.begin() as s:
        import_all(s, sample_site, path, policies, "test")
    with sf() as s:
        assert all(v == 0 for v in _counts(s).values())


def test_programme_file_errors_name_line(tmp_path: Path) -> None:
    bad = PROGRAMME.read_text(encoding="utf-8").replace("category: chiller_plant", "category: chiller_plantt")
    path = tmp_path / "bad.yaml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ProgramError) as info:
        load_program_file(path)
    p = info.value.problems[0]
    line = next(i for i, t in enumerate(bad.splitlines(), 1) if "chiller_plantt" in t)
    assert p.line == line and p.field == "projects[0].measures[4].category" and "unknown measure category" in p.message


def test_shares_csv_that_do_not_add_up_change_nothing(loaded: sessionmaker, tmp_path: Path) -> None:
    csv_path = tmp_path / "shares.csv"
    csv_path.write_text("building_id,owner_id,area_m2,share_pct\n"
                        "daping-makerworks,yuzhong-warehousing,5200,62.65\n"
                        "daping-makerworks,daping-incubator,3100,27.35\n", encoding="utf-8")
    with loaded() as s:
        before = _counts(s)
    with pytest.raises(ProgramError, match=r"shares.csv: building daping-makerworks \(lines 2-3\): share percentages "
                                           r"add up to 90.00 %"), loaded.begin() as s:
        import_shares_csv(s, csv_path, "test")
    csv_path.write_text("building_id,owner_id,area_m2\ndaping-makerworks,yuzhong-warehousing,6000\n"
                        "daping-makerworks,daping-incubator,3100\n", encoding="utf-8")
    with pytest.raises(ProgramError, match="more than the gross floor area 8,600.0"), loaded.begin() as s:
        import_shares_csv(s, csv_path, "test")
    with loaded() as s:
        assert _counts(s) == before
    csv_path.write_text("building_id,owner_id,area_m2,share_pct,owner_name,owner_kind\n"
                        "daping-makerworks,yuzhong-warehousing,5200,50,,\n"
                        "daping-makerworks,daping-incubator,2600,25,,\n"
                        "daping-makerworks,makers-coop,2600,25,大坪创客合作社 (Makers Co-op),enterprise\n",
                        encoding="utf-8")
    with pytest.raises(ProgramError, match="more than the gross floor area"), loaded.begin() as s:
        import_shares_csv(s, csv_path, "test")  # 10,400 m2 > 8,600 m2
    csv_path.write_text(csv_path.read_text(encoding="utf-8").replace("5200,50", "3400,39.53")
                        .replace("2600,25,,", "2600,30.23,,").replace("2600,25,大", "2600,30.23,大"), encoding="utf-8")
    with loaded.begin() as s:
        assert import_shares_csv(s, csv_path, "test") == 3
    with loaded() as s:
        assert q.ownership(s, "daping-makerworks")["owner_count"] == 3
        a = s.scalars(select(AuditLog).where(AuditLog.entity == "ownership_shares",
                                             AuditLog.entity_id == "daping-makerworks")
                      .order_by(AuditLog.id.desc())).first()
        assert a.old_value and "makers-coop" in a.new_value and a.actor == "test"


def test_audit_log_is_append_only(loaded: sessionmaker, db_url: str) -> None:
    with loaded() as s:
        row = s.scalars(select(AuditLog).order_by(AuditLog.id)).first()
        row.new_value = "tampered"
        with pytest.raises(AuditLogImmutable):
            s.flush()
        s.rollback()
        s.delete(s.scalars(select(AuditLog)).first())
        with pytest.raises(AuditLogImmutable):
            s.flush()
        s.rollback()
        row = s.scalars(select(AuditLog).order_by(AuditLog.id)).first()
        row.hash = "ab" * 32  # setting the hash-chain columns once is allowed
        s.commit()
    # and the database itself refuses writers that bypass the ORM (triggers on SQLite and on PostgreSQL)
    engine = make_engine(db_url)
    refused = ["UPDATE audit_log SET new_value = 'x' WHERE id = 1", "DELETE FROM audit_log WHERE id = 2",
               "UPDATE audit_log SET hash = 'cd' WHERE id = 1"]
    if db_url.startswith("postgresql"):
        refused.append("TRUNCATE audit_log")
    for sql in refused:
        with pytest.raises(DatabaseError, match="append-only|already set"), engine.begin() as conn:
            conn.exec_driver_sql(sql)
    with engine.begin() as conn:  # a row without a hash may get it once, through plain SQL too
        conn.exec_driver_sql("UPDATE audit_log SET prev_hash = 'ef', hash = 'ef' WHERE id = 2")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_log WHERE hash IS NOT NULL").scalar_one() == 2
        assert conn.exec_driver_sql("SELECT new_value FROM audit_log WHERE id = 1").scalar_one() != "x"
    engine.dispose()


def test_export_import_round_trip(loaded: sessionmaker, sample_site, policies, tmp_path: Path,
                                  records_dbs: RecordsDatabases, records_backend: str) -> None:
    with loaded() as s:
        first = export_program(s)
        paths = export_csv(s, tmp_path / "csv")
    assert {Path(p).name for p in paths} >= {"owners.csv", "ownership_shares.csv", "milestones.csv", "payments.csv"}
    assert (tmp_path / "csv" / "buildings.csv").read_text(encoding="utf-8-sig").startswith("id,name_zh,name_en")
    write_yaml(first, tmp_path / "programme.yaml")
    url = records_dbs.new(records_backend)
    upgrade(url)
    engine = make_engine(url)
    sf2 = session_factory(engine)
    with sf2.begin() as s:
        import_all(s, sample_site, tmp_path / "programme.yaml", policies, "test")
    with sf2() as s:
        assert export_program(s) == first
        assert q.eligibility(s, "jiefangbei-tower", YZ, as_of=AS_OF).verdict == "eligible"
    engine.dispose()


def test_reimporting_the_same_files_changes_nothing(loaded: sessionmaker, sample_site, policies) -> None:
    with loaded() as s:
        before = _counts(s)
    with loaded.begin() as s:
        import_all(s, sample_site, PROGRAMME, policies, "again")
    with loaded() as s:
        assert _counts(s) == before
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.actor == "again")) == 0


def test_reimport_refused_once_paid(loaded: sessionmaker, policies) -> None:
    prog, tree = load_program_file(PROGRAMME)
    prog.projects[0].target_saving_pct = 0.25  # a changed project that already received money
    with pytest.raises(ProgramError, match="already has payments"), loaded.begin() as s:
        load_projects(s, prog, "test", tree, str(PROGRAMME), policies)


def test_ranking(session: Session) -> None:
    r = q.ranking(session, as_of=AS_OF)
    assert [x["building_id"] for x in r] == ["jiefangbei-tower", "huaxin-building", "daping-makerworks",
                                            "chaotianmen-harbour"]
    top = r[0]
    # 0.35 x 1 (EUI 132 > constraint 110) + 0.2 x 1 (single) + 0.15 x 30/40 + 0.15 x 0.22/0.30 + 0.15 x 1
    assert top["score"] == pytest.approx(0.35 + 0.2 + 0.15 * 0.75 + 0.15 * 0.22 / 0.30 + 0.15, abs=1e-4)
    assert "no GB/T 51161 office value" in r[-1]["notes"][0]
    assert r[-1]["reasons"][0] == {"key": "rank.no_gbt", "args": {"use": "hotel"}}


def test_database_rejects_orphans(loaded: sessionmaker) -> None:
    with pytest.raises(DatabaseError), loaded.begin() as s:
        s.add(Milestone(project_id="no-such-project", seq=1, stage="audit", name="x", required_docs=[]))
        s.flush()
    with loaded() as s:
        assert s.get(RetrofitProject, "jfb-2024-smart-green").milestones[0].name == "Energy audit accepted"
        assert s.scalar(select(func.count()).select_from(Payment)) == 2
