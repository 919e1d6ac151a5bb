"""Table versions: one row per Delta version a larder write commits (``feature_table_versions``).

Versions committed before this revision have no row (the Delta log keeps their history).

Revision ID: 0002_table_versions
Revises: 0001_baseline
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_table_versions"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_table_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("table_id", sa.Integer(), nullable=False),
        sa.Column("delta_version", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("write_id", sa.String(length=36), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("writer", sa.String(length=256), nullable=True),
        sa.Column("committed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["table_id"], ["feature_tables.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("table_id", "delta_version"),
    )
    op.create_index(op.f("ix_feature_table_versions_table_id"), "feature_table_versions", ["table_id"])
    op.create_index(op.f("ix_feature_table_versions_write_id"), "feature_table_versions", ["write_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feature_table_versions_write_id"), table_name="feature_table_versions")
    op.drop_index(op.f("ix_feature_table_versions_table_id"), table_name="feature_table_versions")
    op.drop_table("feature_table_versions")
