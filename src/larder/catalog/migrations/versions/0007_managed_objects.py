"""Features as code: the objects each project's ``larder apply`` created (``managed_objects``), so a
later apply deletes only what the same project created.

Revision ID: 0007_managed_objects
Revises: 0004_parity
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_managed_objects"
down_revision = "0004_parity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "managed_objects" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "managed_objects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("full_name", sa.String(length=400), nullable=False),
        sa.Column("project", sa.String(length=128), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source_file", sa.String(length=1024), nullable=True),
        sa.Column("applied_by", sa.String(length=256), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "full_name"),
    )
    op.create_index(op.f("ix_managed_objects_project"), "managed_objects", ["project"])


def downgrade() -> None:
    op.drop_table("managed_objects")
