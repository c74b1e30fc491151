"""initial programme tables: portfolio, ownership, retrofit projects, subsidies, savings, audit log

Revision ID: 0001_initial
Revises: (none)
Create Date: 2026-11-26 09:21:51.396098
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001_initial'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of buildings.records.models.AUDIT_TRIGGERS_SQLITE at this revision.
AUDIT_TRIGGERS_SQLITE = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE OF at, actor, action, entity, entity_id, field, "
    "old_value, new_value ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_hash_once BEFORE UPDATE OF prev_hash, hash ON audit_log "
    "WHEN OLD.hash IS NOT NULL BEGIN SELECT RAISE(ABORT, 'audit_log hash is already set'); END",
)


def _audit_log() -> None:
    """The audit log (append-only, hash-chain columns)."""
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=120), nullable=False),
    sa.Column('field', sa.String(length=80), nullable=True),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def _portfolio() -> None:
    """Buildings and owners."""
    op.create_table('buildings',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name_zh', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('district_code', sa.String(length=12), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('year_built', sa.Integer(), nullable=False),
    sa.Column('gross_floor_area_m2', sa.Float(), nullable=False),
    sa.Column('floors_above', sa.Integer(), nullable=False),
    sa.Column('use', sa.String(length=32), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('gbt51161_class', sa.String(length=32), nullable=True),
    sa.Column('baseline_eui_kwh_m2a', sa.Float(), nullable=True),
    sa.Column('eui_source', sa.String(length=200), nullable=True),
    sa.Column('has_submetering', sa.Boolean(), nullable=False),
    sa.Column('platform_connected_since', sa.Date(), nullable=True),
    sa.Column('has_owners_assembly', sa.Boolean(), nullable=False),
    sa.Column('unified_operator_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('owners',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('is_sme', sa.Boolean(), nullable=True),
    sa.Column('credit_code', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def _policies() -> None:
    """Subsidy policies as loaded."""
    op.create_table('subsidy_policies',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('jurisdiction_level', sa.String(length=16), nullable=False),
    sa.Column('jurisdiction_code', sa.String(length=12), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('source_file', sa.String(length=300), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def _shares_and_projects() -> None:
    """Ownership shares and retrofit projects."""
    op.create_table('ownership_shares',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('area_m2', sa.Float(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('title_no', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('building_id', 'owner_id', name='uq_share_building_owner')
    )
    op.create_table('retrofit_projects',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('applicant_owner_id', sa.String(length=64), nullable=True),
    sa.Column('applicant_role', sa.String(length=32), nullable=False),
    sa.Column('business_model', sa.String(length=32), nullable=False),
    sa.Column('retrofit_area_m2', sa.Float(), nullable=False),
    sa.Column('verified_area_m2', sa.Float(), nullable=True),
    sa.Column('scope_common_parts', sa.Boolean(), nullable=False),
    sa.Column('target_saving_pct', sa.Float(), nullable=True),
    sa.Column('rating_target', sa.String(length=32), nullable=True),
    sa.Column('other_subsidies', sa.JSON(), nullable=False),
    sa.Column('listed_in_policies', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['applicant_owner_id'], ['owners.id'], ),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )


def _project_parts() -> None:
    """What a project is made of: measures, milestones, votes."""
    op.create_table('measures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('capex', sa.Float(), nullable=False),
    sa.Column('expected_saving_kwh_a', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['retrofit_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('milestones',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('planned_date', sa.Date(), nullable=True),
    sa.Column('actual_date', sa.Date(), nullable=True),
    sa.Column('signed_off_by', sa.String(length=120), nullable=True),
    sa.Column('required_docs', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['retrofit_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('owner_votes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('matter', sa.String(length=40), nullable=False),
    sa.Column('choice', sa.String(length=10), nullable=False),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('meeting_date', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['retrofit_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )


def _savings_and_applications() -> None:
    """Measured savings and subsidy applications."""
    op.create_table('savings_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('building_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('baseline_from', sa.Date(), nullable=False),
    sa.Column('baseline_to', sa.Date(), nullable=False),
    sa.Column('reporting_from', sa.Date(), nullable=False),
    sa.Column('reporting_to', sa.Date(), nullable=False),
    sa.Column('model_kind', sa.String(length=8), nullable=False),
    sa.Column('cv_rmse', sa.Float(), nullable=False),
    sa.Column('nmbe', sa.Float(), nullable=False),
    sa.Column('savings_fraction', sa.Float(), nullable=False),
    sa.Column('avoided_kwh', sa.Float(), nullable=False),
    sa.Column('fsu68', sa.Float(), nullable=True),
    sa.Column('fsu90', sa.Float(), nullable=True),
    sa.Column('adequate', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['retrofit_projects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('subsidy_applications',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('policy_id', sa.String(length=64), nullable=False),
    sa.Column('submitted_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assessed_amount', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['policy_id'], ['subsidy_policies.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['retrofit_projects.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'policy_id', name='uq_application_project_policy')
    )


def _documents_and_payments() -> None:
    """Documents on file and the payments made."""
    op.create_table('documents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('milestone_id', sa.Integer(), nullable=True),
    sa.Column('doc_type', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(length=500), nullable=True),
    sa.Column('signed_by', sa.String(length=120), nullable=True),
    sa.Column('signed_at', sa.DateTime(), nullable=True),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['milestone_id'], ['milestones.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['retrofit_projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('payments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('application_id', sa.String(length=64), nullable=False),
    sa.Column('tranche_seq', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('paid_on', sa.Date(), nullable=False),
    sa.Column('payment_doc_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['application_id'], ['subsidy_applications.id'], ),
    sa.ForeignKeyConstraint(['payment_doc_id'], ['documents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )


def upgrade() -> None:
    # generated by Alembic autogenerate, split into groups (the tables, their order and columns unchanged)
    _audit_log()
    _portfolio()
    _policies()
    _shares_and_projects()
    _project_parts()
    _savings_and_applications()
    _documents_and_payments()
    if op.get_bind().dialect.name == "sqlite":  # the append-only guard of the audit log, in the database
        for sql in AUDIT_TRIGGERS_SQLITE:
            op.execute(sql)


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table('payments')
    op.drop_table('documents')
    op.drop_table('subsidy_applications')
    op.drop_table('savings_results')
    op.drop_table('owner_votes')
    op.drop_table('milestones')
    op.drop_table('measures')
    op.drop_table('retrofit_projects')
    op.drop_table('ownership_shares')
    op.drop_table('subsidy_policies')
    op.drop_table('owners')
    op.drop_table('buildings')
    op.drop_table('audit_log')
    # ### end Alembic commands ###
