"""Databricks parity: feature specs record an owner (``update_feature_spec``); feature serving
endpoints (``serving_endpoints``) and named online stores (``online_stores``).

Revision ID: 0004_parity
Revises: 0003_declarative_features
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_parity"
down_revision = "0003_declarative_features"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    if "owner" not in {c["name"] for c in inspector.get_columns("feature_specs")}:
        op.add_column("feature_specs", sa.Column("owner", sa.String(length=256), nullable=True))
    if "serving_endpoints" not in existing:
        op.create_table(
            "serving_endpoints",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("feature_spec_name", sa.String(length=400), nullable=False),
            sa.Column("config", sa.JSON(), nullable=False),
            sa.Column("creator", sa.String(length=256), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_serving_endpoints_name"), "serving_endpoints", ["name"], unique=True)
        op.create_index(op.f("ix_serving_endpoints_feature_spec_name"), "serving_endpoints", ["feature_spec_name"])
    if "online_stores" not in existing:
        op.create_table(
            "online_stores",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("spec", sa.JSON(), nullable=False),
            sa.Column("managed_data", sa.Integer(), nullable=False),
            sa.Column("capacity", sa.String(length=16), nullable=False),
            sa.Column("read_replica_count", sa.Integer(), nullable=False),
            sa.Column("usage_policy_id", sa.String(length=256), nullable=True),
            sa.Column("creator", sa.String(length=256), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_online_stores_name"), "online_stores", ["name"], unique=True)


def downgrade() -> None:
    op.drop_table("online_stores")
    op.drop_table("serving_endpoints")
    with op.batch_alter_table("feature_specs") as batch:
        batch.drop_column("owner")
