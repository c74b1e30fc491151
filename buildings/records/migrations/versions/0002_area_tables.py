"""the other areas' tables: users and login_failures (dashboard sign-in), alarm and alarm_maintenance (rules),
api_tokens, owner_contacts, signing_keys and evidence_signatures (api)

Until this revision those tables were made by each area's create_all on first use, so a database in service may
already hold some of them: each table (with its indexes) is created only when it is missing. Their modules still
call create_all on first use, which is a no-op once this revision has run.

Revision ID: 0002_area_tables
Revises: 0001_initial
Create Date: 2026-11-26 10:49:11.088984
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_area_tables"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _missing(table: str) -> bool:
    """True when the table is not there yet (a database whose areas made it with create_all already has it)."""
    return table not in sa.inspect(op.get_bind()).get_table_names()


def _alarm() -> None:
    """Alarms of the rules engine, one open alarm per rule and subject (unique open_key)."""
    op.create_table(
        "alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("building", sa.String(length=64), nullable=False),
        sa.Column("equipment", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=14), nullable=False),
        sa.Column("raised_at", sa.Float(), nullable=False),
        sa.Column("last_triggered_at", sa.Float(), nullable=False),
        sa.Column("acked_at", sa.Float(), nullable=True),
        sa.Column("acked_by", sa.String(length=64), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("cleared_at", sa.Float(), nullable=True),
        sa.Column("retriggers", sa.Integer(), nullable=False),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("message_en", sa.Text(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("during_maintenance", sa.Boolean(), nullable=False),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alarm", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_building"), ["building"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarm_family"), ["family"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarm_raised_at"), ["raised_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarm_rule"), ["rule"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarm_severity"), ["severity"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarm_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarm_suppressed"), ["suppressed"], unique=False)
        batch_op.create_index("ux_alarm_open_key", ["open_key"], unique=True)


def _alarm_maintenance() -> None:
    """Maintenance windows that suppress non-safety alarms."""
    op.create_table(
        "alarm_maintenance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building", sa.String(length=64), nullable=False),
        sa.Column("equipment", sa.String(length=64), nullable=True),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alarm_maintenance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_maintenance_building"), ["building"], unique=False)


def _api_tokens() -> None:
    """Scoped, revocable API tokens (hashed secrets)."""
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("pii", sa.Boolean(), nullable=False),
        sa.Column("rate_per_min", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def _evidence_signatures() -> None:
    """Signatures over documents, applications and audit checkpoints."""
    op.create_table(
        "evidence_signatures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(length=24), nullable=False),
        sa.Column("subject_id", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("signer", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_path", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evidence_signatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_signatures_subject_id"), ["subject_id"], unique=False)


def _login_failures() -> None:
    """Dashboard sign-in failures and lockouts."""
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def _owner_contacts() -> None:
    """Owners' contacts (personal information, masked in the API)."""
    op.create_table(
        "owner_contacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("contact_name", sa.String(length=100), nullable=False),
        sa.Column("id_number", sa.String(length=32), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("owner_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_contacts_owner_id"), ["owner_id"], unique=False)


def _signing_keys() -> None:
    """Users' registered Ed25519 public keys."""
    op.create_table(
        "signing_keys",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint"),
    )
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signing_keys_username"), ["username"], unique=False)


def _users() -> None:
    """Dashboard users."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_username"), ["username"], unique=True)


# each area's table and the function that makes it (with its indexes), in the order they were made
AREA_TABLES = (("alarm", _alarm), ("alarm_maintenance", _alarm_maintenance), ("api_tokens", _api_tokens),
               ("evidence_signatures", _evidence_signatures), ("login_failures", _login_failures),
               ("owner_contacts", _owner_contacts), ("signing_keys", _signing_keys), ("users", _users))


def upgrade() -> None:
    for table, make in AREA_TABLES:
        if _missing(table):
            make()


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_username"))

    op.drop_table("users")
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signing_keys_username"))

    op.drop_table("signing_keys")
    with op.batch_alter_table("owner_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_contacts_owner_id"))

    op.drop_table("owner_contacts")
    op.drop_table("login_failures")
    with op.batch_alter_table("evidence_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_signatures_subject_id"))

    op.drop_table("evidence_signatures")
    op.drop_table("api_tokens")
    with op.batch_alter_table("alarm_maintenance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarm_maintenance_building"))

    op.drop_table("alarm_maintenance")
    with op.batch_alter_table("alarm", schema=None) as batch_op:
        batch_op.drop_index("ux_alarm_open_key")
        batch_op.drop_index(batch_op.f("ix_alarm_suppressed"))
        batch_op.drop_index(batch_op.f("ix_alarm_state"))
        batch_op.drop_index(batch_op.f("ix_alarm_severity"))
        batch_op.drop_index(batch_op.f("ix_alarm_rule"))
        batch_op.drop_index(batch_op.f("ix_alarm_raised_at"))
        batch_op.drop_index(batch_op.f("ix_alarm_family"))
        batch_op.drop_index(batch_op.f("ix_alarm_building"))

    op.drop_table("alarm")
