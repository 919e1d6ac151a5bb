"""Streams (``create_stream``) and their consumers' progress (``streams``).

Revision ID: 0009_streams
Revises: 0008_materialization
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_streams"
down_revision = "0008_materialization"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "streams" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "streams",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=400), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("creator", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("delta_version", sa.Integer(), nullable=True),
        sa.Column("offsets", sa.JSON(), nullable=True),
        sa.Column("online_version", sa.Integer(), nullable=True),
        sa.Column("online_offsets", sa.JSON(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id"),
    )
    op.create_index(op.f("ix_streams_name"), "streams", ["name"], unique=True)
    op.create_index(op.f("ix_streams_destination"), "streams", ["destination"])


def downgrade() -> None:
    op.drop_table("streams")
