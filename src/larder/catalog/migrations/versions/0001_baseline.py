"""Baseline: the catalog schema of larder before migrations (``larder_meta.schema_version`` 1).

This is the schema that ``Base.metadata.create_all`` produced on open up to the release that introduced
Alembic (feature tables, features, tags, per-table stats, functions and their versions and usage,
named feature specs, logged models and their lineage, online publications, quality settings,
validation runs and profiles, the web catalog's edit trail). Those releases created missing tables on
every open, so a catalog of any of them may lack some: this revision creates exactly the missing ones,
and is what a legacy catalog's upgrade starts with. Frozen: never edit it, add a revision instead.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if 'catalog_edits' not in existing:
        op.create_table('catalog_edits',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('object_kind', sa.String(length=32), nullable=False),
            sa.Column('object_name', sa.String(length=400), nullable=False),
            sa.Column('field', sa.String(length=300), nullable=False),
            sa.Column('old_value', sa.JSON(), nullable=True),
            sa.Column('new_value', sa.JSON(), nullable=True),
            sa.Column('edited_by', sa.String(length=256), nullable=False),
            sa.Column('edited_at', sa.DateTime(), nullable=False),
            sa.Column('via', sa.String(length=32), nullable=False),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_catalog_edits_edited_at'), 'catalog_edits', ['edited_at'], unique=False)
        op.create_index(op.f('ix_catalog_edits_object_name'), 'catalog_edits', ['object_name'], unique=False)
    if 'feature_function_usage' not in existing:
        op.create_table('feature_function_usage',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('model_name', sa.String(length=400), nullable=False),
            sa.Column('model_version', sa.String(length=64), nullable=False),
            sa.Column('function_name', sa.String(length=400), nullable=False),
            sa.Column('function_version', sa.String(length=64), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('model_name', 'model_version', 'function_name', 'function_version')
        )
        op.create_index(op.f('ix_feature_function_usage_function_name'), 'feature_function_usage', ['function_name'], unique=False)
        op.create_index(op.f('ix_feature_function_usage_model_name'), 'feature_function_usage', ['model_name'], unique=False)
    if 'feature_functions' not in existing:
        op.create_table('feature_functions',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('full_name', sa.String(length=400), nullable=False),
            sa.Column('catalog_name', sa.String(length=128), nullable=False),
            sa.Column('schema_name', sa.String(length=128), nullable=False),
            sa.Column('function_name', sa.String(length=128), nullable=False),
            sa.Column('description', sa.Text(), nullable=True),
            sa.Column('owner', sa.String(length=256), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_feature_functions_full_name'), 'feature_functions', ['full_name'], unique=True)
    if 'feature_specs' not in existing:
        op.create_table('feature_specs',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('full_name', sa.String(length=400), nullable=False),
            sa.Column('catalog_name', sa.String(length=128), nullable=False),
            sa.Column('schema_name', sa.String(length=128), nullable=False),
            sa.Column('spec_name', sa.String(length=128), nullable=False),
            sa.Column('yaml', sa.Text(), nullable=False),
            sa.Column('description', sa.Text(), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_feature_specs_full_name'), 'feature_specs', ['full_name'], unique=True)
    if 'feature_tables' not in existing:
        op.create_table('feature_tables',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('full_name', sa.String(length=400), nullable=False),
            sa.Column('catalog_name', sa.String(length=128), nullable=False),
            sa.Column('schema_name', sa.String(length=128), nullable=False),
            sa.Column('table_name', sa.String(length=128), nullable=False),
            sa.Column('path', sa.Text(), nullable=False),
            sa.Column('primary_keys', sa.JSON(), nullable=False),
            sa.Column('timestamp_keys', sa.JSON(), nullable=False),
            sa.Column('partition_columns', sa.JSON(), nullable=False),
            sa.Column('description', sa.Text(), nullable=True),
            sa.Column('owner', sa.String(length=256), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_feature_tables_full_name'), 'feature_tables', ['full_name'], unique=True)
    if 'larder_meta' not in existing:
        op.create_table('larder_meta',
            sa.Column('key', sa.String(length=64), nullable=False),
            sa.Column('value', sa.String(length=256), nullable=False),
            sa.PrimaryKeyConstraint('key')
        )
    if 'logged_models' not in existing:
        op.create_table('logged_models',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('run_uri', sa.String(length=512), nullable=False),
            sa.Column('model_uri', sa.String(length=512), nullable=False),
            sa.Column('run_id', sa.String(length=64), nullable=False),
            sa.Column('artifact_path', sa.String(length=256), nullable=False),
            sa.Column('registered_name', sa.String(length=400), nullable=True),
            sa.Column('registered_version', sa.String(length=64), nullable=True),
            sa.Column('flavor', sa.String(length=128), nullable=False),
            sa.Column('tracking_uri', sa.Text(), nullable=False),
            sa.Column('feature_spec', sa.Text(), nullable=False),
            sa.Column('input_columns', sa.JSON(), nullable=False),
            sa.Column('feature_columns', sa.JSON(), nullable=False),
            sa.Column('labels', sa.JSON(), nullable=False),
            sa.Column('logged_at', sa.DateTime(), nullable=False),
            sa.Column('owner', sa.String(length=256), nullable=True),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_logged_models_registered_name'), 'logged_models', ['registered_name'], unique=False)
        op.create_index(op.f('ix_logged_models_run_uri'), 'logged_models', ['run_uri'], unique=False)
    if 'online_publications' not in existing:
        op.create_table('online_publications',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('table_name', sa.String(length=400), nullable=False),
            sa.Column('store_name', sa.String(length=128), nullable=True),
            sa.Column('store_type', sa.String(length=32), nullable=False),
            sa.Column('store_spec', sa.JSON(), nullable=False),
            sa.Column('store_key', sa.String(length=512), nullable=False),
            sa.Column('online_table_name', sa.String(length=512), nullable=False),
            sa.Column('online_table', sa.JSON(), nullable=False),
            sa.Column('features', sa.JSON(), nullable=False),
            sa.Column('delta_version', sa.Integer(), nullable=False),
            sa.Column('mode', sa.String(length=16), nullable=False),
            sa.Column('filter_condition', sa.Text(), nullable=True),
            sa.Column('rows', sa.BigInteger(), nullable=False),
            sa.Column('order_value', sa.BigInteger(), nullable=True),
            sa.Column('published_at', sa.DateTime(), nullable=False),
            sa.Column('duration_s', sa.Float(), nullable=True),
            sa.Column('dropped_at', sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_online_publications_store_key'), 'online_publications', ['store_key'], unique=False)
        op.create_index(op.f('ix_online_publications_table_name'), 'online_publications', ['table_name'], unique=False)
    if 'quality_profiles' not in existing:
        op.create_table('quality_profiles',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('table_full_name', sa.String(length=400), nullable=False),
            sa.Column('delta_version', sa.Integer(), nullable=False),
            sa.Column('row_count', sa.Integer(), nullable=False),
            sa.Column('profiled_rows', sa.Integer(), nullable=False),
            sa.Column('sampled', sa.Boolean(), nullable=False),
            sa.Column('profile', sa.JSON(), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('table_full_name', 'delta_version')
        )
        op.create_index(op.f('ix_quality_profiles_table_full_name'), 'quality_profiles', ['table_full_name'], unique=False)
    if 'quality_settings' not in existing:
        op.create_table('quality_settings',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('table_full_name', sa.String(length=400), nullable=False),
            sa.Column('expectations', sa.JSON(), nullable=False),
            sa.Column('policy', sa.String(length=16), nullable=False),
            sa.Column('profile_on_write', sa.Boolean(), nullable=False),
            sa.Column('profile_sample_rows', sa.Integer(), nullable=True),
            sa.Column('updated_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_quality_settings_table_full_name'), 'quality_settings', ['table_full_name'], unique=True)
    if 'quality_validation_runs' not in existing:
        op.create_table('quality_validation_runs',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('table_full_name', sa.String(length=400), nullable=False),
            sa.Column('delta_version', sa.Integer(), nullable=False),
            sa.Column('passed', sa.Boolean(), nullable=False),
            sa.Column('policy', sa.String(length=16), nullable=False),
            sa.Column('row_count', sa.Integer(), nullable=False),
            sa.Column('failed_count', sa.Integer(), nullable=False),
            sa.Column('result', sa.JSON(), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('table_full_name', 'delta_version')
        )
        op.create_index(op.f('ix_quality_validation_runs_table_full_name'), 'quality_validation_runs', ['table_full_name'], unique=False)
    if 'feature_function_versions' not in existing:
        op.create_table('feature_function_versions',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('function_id', sa.Integer(), nullable=False),
            sa.Column('version', sa.String(length=64), nullable=False),
            sa.Column('seq', sa.Integer(), nullable=False),
            sa.Column('python_name', sa.String(length=256), nullable=False),
            sa.Column('source', sa.Text(), nullable=False),
            sa.Column('code', sa.Text(), nullable=False),
            sa.Column('parameters', sa.JSON(), nullable=False),
            sa.Column('return_type', sa.String(length=256), nullable=True),
            sa.Column('output_type', sa.String(length=256), nullable=True),
            sa.Column('mode', sa.String(length=16), nullable=False),
            sa.Column('environment', sa.JSON(), nullable=False),
            sa.Column('pickle', sa.LargeBinary(), nullable=True),
            sa.Column('python_version', sa.String(length=32), nullable=False),
            sa.Column('description', sa.Text(), nullable=True),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['function_id'], ['feature_functions.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('function_id', 'version')
        )
        op.create_index(op.f('ix_feature_function_versions_function_id'), 'feature_function_versions', ['function_id'], unique=False)
    if 'feature_table_stats' not in existing:
        op.create_table('feature_table_stats',
            sa.Column('table_id', sa.Integer(), nullable=False),
            sa.Column('delta_version', sa.Integer(), nullable=False),
            sa.Column('row_count', sa.BigInteger(), nullable=False),
            sa.Column('written_at', sa.DateTime(), nullable=False),
            sa.Column('recorded_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['table_id'], ['feature_tables.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('table_id')
        )
    if 'feature_table_tags' not in existing:
        op.create_table('feature_table_tags',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('table_id', sa.Integer(), nullable=False),
            sa.Column('key', sa.String(length=256), nullable=False),
            sa.Column('value', sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(['table_id'], ['feature_tables.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('table_id', 'key')
        )
        op.create_index(op.f('ix_feature_table_tags_table_id'), 'feature_table_tags', ['table_id'], unique=False)
    if 'features' not in existing:
        op.create_table('features',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('table_id', sa.Integer(), nullable=False),
            sa.Column('name', sa.String(length=256), nullable=False),
            sa.Column('dtype', sa.String(length=128), nullable=False),
            sa.Column('position', sa.Integer(), nullable=False),
            sa.Column('description', sa.Text(), nullable=True),
            sa.Column('added_in_version', sa.Integer(), nullable=False),
            sa.Column('extra', sa.JSON(), nullable=False),
            sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(['table_id'], ['feature_tables.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('table_id', 'name')
        )
        op.create_index(op.f('ix_features_table_id'), 'features', ['table_id'], unique=False)
    if 'logged_model_features' not in existing:
        op.create_table('logged_model_features',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('model_id', sa.Integer(), nullable=False),
            sa.Column('position', sa.Integer(), nullable=False),
            sa.Column('table_name', sa.String(length=400), nullable=False),
            sa.Column('feature_name', sa.String(length=256), nullable=False),
            sa.Column('output_name', sa.String(length=256), nullable=False),
            sa.Column('dtype', sa.String(length=128), nullable=False),
            sa.Column('default_value', sa.JSON(), nullable=True),
            sa.ForeignKeyConstraint(['model_id'], ['logged_models.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_logged_model_features_model_id'), 'logged_model_features', ['model_id'], unique=False)
        op.create_index(op.f('ix_logged_model_features_table_name'), 'logged_model_features', ['table_name'], unique=False)
    if 'logged_model_functions' not in existing:
        op.create_table('logged_model_functions',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('model_id', sa.Integer(), nullable=False),
            sa.Column('position', sa.Integer(), nullable=False),
            sa.Column('function_name', sa.String(length=400), nullable=False),
            sa.Column('function_version', sa.String(length=64), nullable=False),
            sa.Column('input_bindings', sa.JSON(), nullable=False),
            sa.Column('output_name', sa.String(length=256), nullable=False),
            sa.ForeignKeyConstraint(['model_id'], ['logged_models.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id')
        )
        op.create_index(op.f('ix_logged_model_functions_function_name'), 'logged_model_functions', ['function_name'], unique=False)
        op.create_index(op.f('ix_logged_model_functions_model_id'), 'logged_model_functions', ['model_id'], unique=False)
    if 'logged_model_tables' not in existing:
        op.create_table('logged_model_tables',
            sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
            sa.Column('model_id', sa.Integer(), nullable=False),
            sa.Column('position', sa.Integer(), nullable=False),
            sa.Column('table_name', sa.String(length=400), nullable=False),
            sa.Column('delta_version', sa.Integer(), nullable=True),
            sa.Column('online', sa.JSON(), nullable=True),
            sa.ForeignKeyConstraint(['model_id'], ['logged_models.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('model_id', 'table_name')
        )
        op.create_index(op.f('ix_logged_model_tables_model_id'), 'logged_model_tables', ['model_id'], unique=False)
        op.create_index(op.f('ix_logged_model_tables_table_name'), 'logged_model_tables', ['table_name'], unique=False)


def downgrade() -> None:
    raise NotImplementedError("The baseline is not reversible: it would drop the whole catalog.")
