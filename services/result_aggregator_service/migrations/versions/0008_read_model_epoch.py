"""read_model: the live read model's epoch, and the retired one a rebuild left to drop

The read-model tables (batches, essays, processed_events) are always the live ones in the default
schema; `ras rebuild` builds a shadow set in a schema of its own and swaps it in with one transaction
that bumps `epoch` here. See docs/runbook.md, "Rebuilding the read model".

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "read_model",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_schema", sa.String(length=63), nullable=True),
        sa.Column("drop_retired_after", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name="ck_read_model_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO read_model (id, epoch) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("read_model")
