"""Materialization: ``materialized_features``, ``materialization_runs`` (one row per run) and
``materialization_operations`` (backfills). Each table is created only when missing (a catalog created
from the models by a build that had them is then stamped through here unchanged).

Revision ID: 0008_materialization
Revises: 0007_managed_objects
Create Date: 2026-12-03 11:49:39.637991
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_materialization'
down_revision = '0007_managed_objects'
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "materialization_operations" not in existing:
        _operations()
    if "materialization_runs" not in existing:
        _runs()
    if "materialized_features" not in existing:
        _features()


def _operations() -> None:
    op.create_table('materialization_operations',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('request_id', sa.String(length=256), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('feature_full_names', sa.JSON(), nullable=False),
    sa.Column('backfill_ranges', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('materialization_operations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_materialization_operations_request_id'), ['request_id'], unique=False)


def _runs() -> None:
    op.create_table('materialization_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('materialized_feature_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('source_table', sa.String(length=400), nullable=True),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('range_start', sa.DateTime(), nullable=True),
    sa.Column('range_end', sa.DateTime(), nullable=True),
    sa.Column('rows_read', sa.Integer(), nullable=True),
    sa.Column('rows_written', sa.Integer(), nullable=True),
    sa.Column('output_version', sa.Integer(), nullable=True),
    sa.Column('operation', sa.String(length=128), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('materialization_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_materialization_runs_materialized_feature_id'), ['materialized_feature_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_materialization_runs_run_id'), ['run_id'], unique=False)


def _features() -> None:
    op.create_table('materialized_features',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('feature_name', sa.String(length=400), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('is_online', sa.Boolean(), nullable=False),
    sa.Column('destination', sa.JSON(), nullable=False),
    sa.Column('table_name', sa.String(length=400), nullable=False),
    sa.Column('trigger', sa.JSON(), nullable=False),
    sa.Column('group_id', sa.String(length=64), nullable=False),
    sa.Column('source_table', sa.String(length=400), nullable=True),
    sa.Column('source_version', sa.Integer(), nullable=True),
    sa.Column('last_materialization_time', sa.DateTime(), nullable=True),
    sa.Column('latest_backfill_operation', sa.String(length=128), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=True),
    sa.Column('budget_policy_id', sa.String(length=256), nullable=True),
    sa.Column('creator', sa.String(length=256), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('materialized_features', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_materialized_features_feature_name'), ['feature_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_materialized_features_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_materialized_features_source_table'), ['source_table'], unique=False)
        batch_op.create_index(batch_op.f('ix_materialized_features_table_name'), ['table_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('materialized_features', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_materialized_features_table_name'))
        batch_op.drop_index(batch_op.f('ix_materialized_features_source_table'))
        batch_op.drop_index(batch_op.f('ix_materialized_features_group_id'))
        batch_op.drop_index(batch_op.f('ix_materialized_features_feature_name'))

    op.drop_table('materialized_features')
    with op.batch_alter_table('materialization_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_materialization_runs_run_id'))
        batch_op.drop_index(batch_op.f('ix_materialization_runs_materialized_feature_id'))

    op.drop_table('materialization_runs')
    with op.batch_alter_table('materialization_operations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_materialization_operations_request_id'))

    op.drop_table('materialization_operations')
