"""the audit log's append-only guard on PostgreSQL too: a trigger refuses UPDATE of a row's content, DELETE and
TRUNCATE, and a second setting of its hash (SQLite has had the same guard as triggers since 0001_initial)

No table or column changes; on SQLite this revision does nothing.

Revision ID: 0003_audit_guard_postgresql
Revises: 0002_area_tables
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_audit_guard_postgresql"
down_revision: str | None = "0002_area_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of buildings.records.models.AUDIT_TRIGGERS_POSTGRESQL at this revision.
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


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sql in AUDIT_TRIGGERS_POSTGRESQL:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
