"""alarm flood control: a grouped alarm's points (points, open_points) and the flood flag of an alarm raised
beyond a rate limit (flood, indexed)

Existing alarms get no points (a single alarm) and flood false. A database whose alarm table was made by
create_all from the current model already has the columns: each is added only when it is missing.

Revision ID: 0004_alarm_flood_groups
Revises: 0003_audit_guard_postgresql
Create Date: 2026-12-04 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_alarm_flood_groups"
down_revision: str | None = "0003_audit_guard_postgresql"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMES = ("points", "open_points", "flood")


def _new_columns() -> list[sa.Column]:
    """The columns this revision adds (fresh objects each time: a Column belongs to one table)."""
    return [sa.Column("points", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
            sa.Column("open_points", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
            sa.Column("flood", sa.Boolean(), nullable=False, server_default=sa.false())]


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("alarm")}


def _indexes() -> set[str]:
    return {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("alarm")}


def upgrade() -> None:
    have, indexed = _columns(), _indexes()
    with op.batch_alter_table("alarm", schema=None) as batch_op:
        for col in _new_columns():
            if col.name not in have:
                batch_op.add_column(col)
        if "ix_alarm_flood" not in indexed:
            batch_op.create_index(batch_op.f("ix_alarm_flood"), ["flood"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alarm", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarm_flood"))
        for name in reversed(NAMES):
            batch_op.drop_column(name)
