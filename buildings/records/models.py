"""Records tables of the portfolio and the retrofit programme, on the shared ``Base``.

owners, buildings, ownership_shares, owner_votes, retrofit_projects, measures, milestones, documents,
subsidy_policies, subsidy_applications, payments, savings_results, audit_log. (Users, tokens and alarms are
declared by their own packages on the same Base.)

The audit log is append-only: the ORM refuses updates and deletes of its rows, and triggers in the database
refuse them too (SQLite and PostgreSQL). ``prev_hash``/``hash`` are there for a hash chain (api/evidence.py); a
row whose hash is still NULL may have it set once. A transaction that appends audit rows holds the chain lock
(``lock_audit_chain``) from its first one until it commits, so row ids follow commit order and a sealer never
skips a row that commits later with a smaller id: two writers cannot fork the chain.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from buildings.records.base import Base, write_lock


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Owner(Base):
    __tablename__ = "owners"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    is_sme: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    credit_code: Mapped[str | None] = mapped_column(String(32), nullable=True)  # 统一社会信用代码, legal entities only
    shares: Mapped[list[OwnershipShare]] = relationship(back_populates="owner")


class Building(Base):
    __tablename__ = "buildings"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    district_code: Mapped[str] = mapped_column(String(12))
    country: Mapped[str] = mapped_column(String(2), default="CN")
    year_built: Mapped[int] = mapped_column(Integer)
    gross_floor_area_m2: Mapped[float] = mapped_column(Float)
    floors_above: Mapped[int] = mapped_column(Integer, default=1)
    use: Mapped[str] = mapped_column(String(32))
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    gbt51161_class: Mapped[str | None] = mapped_column(String(32), nullable=True)
    baseline_eui_kwh_m2a: Mapped[float | None] = mapped_column(Float, nullable=True)
    eui_source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    has_submetering: Mapped[bool] = mapped_column(Boolean, default=False)
    platform_connected_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    has_owners_assembly: Mapped[bool] = mapped_column(Boolean, default=False)
    unified_operator_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shares: Mapped[list[OwnershipShare]] = relationship(back_populates="building", cascade="all, delete-orphan")
    projects: Mapped[list[RetrofitProject]] = relationship(back_populates="building")


class OwnershipShare(Base):
    """An owner's exclusive area in a building; ``count`` > 1 when the row stands for several small owners."""

    __tablename__ = "ownership_shares"
    __table_args__ = (UniqueConstraint("building_id", "owner_id", name="uq_share_building_owner"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"))
    area_m2: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, default=1)
    title_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    building: Mapped[Building] = relationship(back_populates="shares")
    owner: Mapped[Owner] = relationship(back_populates="shares")


class RetrofitProject(Base):
    __tablename__ = "retrofit_projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.id"))
    name: Mapped[str] = mapped_column(String(200))
    applicant_owner_id: Mapped[str | None] = mapped_column(ForeignKey("owners.id"), nullable=True)
    applicant_role: Mapped[str] = mapped_column(String(32), default="owner")
    business_model: Mapped[str] = mapped_column(String(32), default="owner_funded")
    retrofit_area_m2: Mapped[float] = mapped_column(Float)
    verified_area_m2: Mapped[float | None] = mapped_column(Float, nullable=True)
    scope_common_parts: Mapped[bool] = mapped_column(Boolean, default=True)
    target_saving_pct: Mapped[float | None] = mapped_column(Float, nullable=True)  # fraction, 0.2 = 20 %
    rating_target: Mapped[str | None] = mapped_column(String(32), nullable=True)
    other_subsidies: Mapped[list[str]] = mapped_column(JSON, default=list)
    listed_in_policies: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    building: Mapped[Building] = relationship(back_populates="projects")
    # every list in a stable order (PostgreSQL returns rows in no particular order without ORDER BY): as filed
    measures: Mapped[list[Measure]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                  order_by="Measure.id")
    milestones: Mapped[list[Milestone]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                      order_by="Milestone.seq")
    documents: Mapped[list[Document]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                    order_by="Document.id")
    votes: Mapped[list[OwnerVote]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                                  order_by="OwnerVote.id")
    applications: Mapped[list[SubsidyApplication]] = relationship(back_populates="project",
                                                                  order_by="SubsidyApplication.id")


class Measure(Base):
    __tablename__ = "measures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("retrofit_projects.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(300), default="")
    capex: Mapped[float] = mapped_column(Float)
    expected_saving_kwh_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    project: Mapped[RetrofitProject] = relationship(back_populates="measures")


class Milestone(Base):
    __tablename__ = "milestones"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("retrofit_projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    planned_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    actual_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    signed_off_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    required_docs: Mapped[list[str]] = mapped_column(JSON, default=list)
    project: Mapped[RetrofitProject] = relationship(back_populates="milestones")


class Document(Base):
    """A document on file, identified by the SHA-256 of its content (the file itself lives elsewhere)."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("retrofit_projects.id", ondelete="CASCADE"))
    milestone_id: Mapped[int | None] = mapped_column(ForeignKey("milestones.id"), nullable=True)
    doc_type: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str | None] = mapped_column(String(500), nullable=True)
    signed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    signed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    visibility: Mapped[str] = mapped_column(String(16), default="parties_only")
    project: Mapped[RetrofitProject] = relationship(back_populates="documents")


class OwnerVote(Base):
    """A recorded vote of an owner row (or of ``count`` of its owners) on a project's art. 278 matter."""

    __tablename__ = "owner_votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("retrofit_projects.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"))
    matter: Mapped[str] = mapped_column(String(40), default="rebuild_or_alter")
    choice: Mapped[str] = mapped_column(String(10))
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meeting_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    project: Mapped[RetrofitProject] = relationship(back_populates="votes")


class SubsidyPolicyRecord(Base):
    """A loaded policy: the validated YAML as JSON plus the columns lists need."""

    __tablename__ = "subsidy_policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    jurisdiction_level: Mapped[str] = mapped_column(String(16))
    jurisdiction_code: Mapped[str] = mapped_column(String(12))
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    source_file: Mapped[str] = mapped_column(String(300))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class SubsidyApplication(Base):
    __tablename__ = "subsidy_applications"
    __table_args__ = (UniqueConstraint("project_id", "policy_id", name="uq_application_project_policy"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("retrofit_projects.id"))
    policy_id: Mapped[str] = mapped_column(ForeignKey("subsidy_policies.id"))
    submitted_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    assessed_amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    project: Mapped[RetrofitProject] = relationship(back_populates="applications")
    payments: Mapped[list[Payment]] = relationship(back_populates="application",
                                                   order_by="(Payment.paid_on, Payment.id)")


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("subsidy_applications.id"))
    tranche_seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float] = mapped_column(Float)
    paid_on: Mapped[dt.date] = mapped_column(Date)
    payment_doc_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), nullable=True)
    application: Mapped[SubsidyApplication] = relationship(back_populates="payments")


class SavingsResult(Base):
    """A measured-savings result (IPMVP option C) for a building: from telemetry or an M&V report."""

    __tablename__ = "savings_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.id"))
    project_id: Mapped[str | None] = mapped_column(ForeignKey("retrofit_projects.id"), nullable=True)
    baseline_from: Mapped[dt.date] = mapped_column(Date)
    baseline_to: Mapped[dt.date] = mapped_column(Date)
    reporting_from: Mapped[dt.date] = mapped_column(Date)
    reporting_to: Mapped[dt.date] = mapped_column(Date)
    model_kind: Mapped[str] = mapped_column(String(8))
    cv_rmse: Mapped[float] = mapped_column(Float)
    nmbe: Mapped[float] = mapped_column(Float)
    savings_fraction: Mapped[float] = mapped_column(Float)
    avoided_kwh: Mapped[float] = mapped_column(Float)
    fsu68: Mapped[float | None] = mapped_column(Float, nullable=True)
    fsu90: Mapped[float | None] = mapped_column(Float, nullable=True)
    adequate: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditLog(Base):
    """Who changed what, when, with the old and new value. Append-only; hash-chain columns for the API side."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(120))
    field: Mapped[str | None] = mapped_column(String(80), nullable=True)
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditLogImmutable(RuntimeError):
    """An attempt to change or delete an audit log row."""


AUDIT_CHAIN_LOCK = 7270001  # the PostgreSQL advisory lock key of the audit chain


def lock_audit_chain(s: Session) -> None:
    """Hold the audit chain until this transaction ends: PostgreSQL's transaction-level advisory lock, SQLite's
    write lock. Taken before an audit row is inserted (its id comes from the database under the lock) and by
    the sealer; re-taking it in the same transaction is free."""
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_CHAIN_LOCK})
    else:
        write_lock(s)


@event.listens_for(Session, "before_flush")
def _audit_append_only(session: Session, _ctx: Any, _instances: Any) -> None:
    if any(isinstance(obj, AuditLog) for obj in session.new):
        lock_audit_chain(session)
    for obj in session.deleted:
        if isinstance(obj, AuditLog):
            raise AuditLogImmutable("audit_log rows cannot be deleted (append-only)")
    for obj in session.dirty:
        if isinstance(obj, AuditLog) and session.is_modified(obj):
            from sqlalchemy import inspect

            changed = {a.key for a in inspect(obj).attrs if a.history.has_changes()}
            hash_only = changed <= {"prev_hash", "hash"} and all(
                not inspect(obj).attrs[k].history.deleted or inspect(obj).attrs[k].history.deleted == [None]
                for k in changed)
            if not hash_only:
                raise AuditLogImmutable(f"audit_log row {obj.id} cannot be changed (append-only): {sorted(changed)}")


# The same guard in the database, for writers that bypass the ORM.
AUDIT_TRIGGERS_SQLITE = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE OF at, actor, action, entity, entity_id, field, "
    "old_value, new_value ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_hash_once BEFORE UPDATE OF prev_hash, hash ON audit_log "
    "WHEN OLD.hash IS NOT NULL BEGIN SELECT RAISE(ABORT, 'audit_log hash is already set'); END",
)
AUDIT_TRIGGERS_POSTGRESQL = (
    """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only (' || TG_OP || ' refused)';
  END IF;
  IF (NEW.id, NEW.at, NEW.actor, NEW.action, NEW.entity, NEW.entity_id, NEW.field, NEW.old_value, NEW.new_value)
     IS DISTINCT FROM
     (OLD.id, OLD.at, OLD.actor, OLD.action, OLD.entity, OLD.entity_id, OLD.field, OLD.old_value, OLD.new_value)
  THEN
    RAISE EXCEPTION 'audit_log is append-only';
  END IF;
  IF OLD.hash IS NOT NULL AND (NEW.prev_hash, NEW.hash) IS DISTINCT FROM (OLD.prev_hash, OLD.hash) THEN
    RAISE EXCEPTION 'audit_log hash is already set';
  END IF;
  RETURN NEW;
END $$""",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
for _sql in AUDIT_TRIGGERS_SQLITE:
    event.listen(AuditLog.__table__, "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in AUDIT_TRIGGERS_POSTGRESQL:
    event.listen(AuditLog.__table__, "after_create", DDL(_sql).execute_if(dialect="postgresql"))


PROGRAM_TABLES = ("owners", "buildings", "ownership_shares", "retrofit_projects", "measures", "milestones",
                  "documents", "owner_votes", "subsidy_policies", "subsidy_applications", "payments",
                  "savings_results", "audit_log")
