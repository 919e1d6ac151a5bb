"""Operations carry their own details (a purge's entities table, its version and per-feature results).

Revision ID: 0010_operation_details
Revises: 0009_streams
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_operation_details"
down_revision = "0009_streams"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("materialization_operations")}
    if "details" not in columns:
        with op.batch_alter_table("materialization_operations") as batch:
            batch.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("materialization_operations") as batch:
        batch.drop_column("details")
