"""essays.facts: each essay's facts in its own row, out of the batch's facts

A change to one essay of a large batch then rewrites that essay's row, not the whole batch's JSONB.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "essays",
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.execute(
        "UPDATE essays SET facts = batches.facts -> 'essays' -> essays.essay_id FROM batches "
        "WHERE batches.batch_id = essays.batch_id AND batches.facts -> 'essays' ? essays.essay_id"
    )
    op.execute("UPDATE batches SET facts = facts - 'essays' WHERE facts ? 'essays'")


def downgrade() -> None:
    op.execute(
        "UPDATE batches SET facts = batches.facts || jsonb_build_object('essays', COALESCE("
        "(SELECT jsonb_object_agg(essays.essay_id, essays.facts) FROM essays "
        "WHERE essays.batch_id = batches.batch_id), '{}'::jsonb)) WHERE batches.facts <> '{}'::jsonb"
    )
    op.drop_column("essays", "facts")
