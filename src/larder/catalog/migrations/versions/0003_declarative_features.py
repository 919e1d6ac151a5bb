"""Declarative features: ``declarative_features`` and ``declarative_feature_models``.

These tables reached main while catalogs were still created with ``create_all`` on open, so a catalog
from that time may have them already: each is created only when missing.

Revision ID: 0003_declarative_features
Revises: 0002_table_versions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_declarative_features"
down_revision = "0002_table_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "declarative_feature_models" not in existing:
        op.create_table(
            "declarative_feature_models",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("feature_name", sa.String(length=400), nullable=False),
            sa.Column("run_uri", sa.String(length=512), nullable=False),
            sa.Column("registered_name", sa.String(length=400), nullable=True),
            sa.Column("registered_version", sa.String(length=64), nullable=True),
            sa.Column("source_version", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("feature_name", "run_uri"),
        )
        op.create_index(op.f("ix_declarative_feature_models_feature_name"), "declarative_feature_models",
                        ["feature_name"])
    if "declarative_features" not in existing:
        op.create_table(
            "declarative_features",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("full_name", sa.String(length=400), nullable=False),
            sa.Column("catalog_name", sa.String(length=128), nullable=False),
            sa.Column("schema_name", sa.String(length=128), nullable=False),
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("definition", sa.JSON(), nullable=False),
            sa.Column("source_table", sa.String(length=400), nullable=True),
            sa.Column("source_version", sa.Integer(), nullable=True),
            sa.Column("output_type", sa.String(length=256), nullable=True),
            sa.Column("description", sa.Text(), nullable=True),
            sa.Column("owner", sa.String(length=256), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_declarative_features_full_name"), "declarative_features", ["full_name"],
                        unique=True)
        op.create_index(op.f("ix_declarative_features_source_table"), "declarative_features", ["source_table"])


def downgrade() -> None:
    op.drop_table("declarative_features")
    op.drop_table("declarative_feature_models")
