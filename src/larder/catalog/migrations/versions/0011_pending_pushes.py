"""Pushes under way (``pending_pushes``): a push whose online write did not finish is found again.

Revision ID: 0011_pending_pushes
Revises: 0010_operation_details
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_pending_pushes"
down_revision = "0010_operation_details"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "pending_pushes" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "pending_pushes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(length=400), nullable=False),
        sa.Column("push_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_pending_pushes_table_name"), "pending_pushes", ["table_name"])
    op.create_index(op.f("ix_pending_pushes_push_id"), "pending_pushes", ["push_id"])


def downgrade() -> None:
    op.drop_table("pending_pushes")
