"""parked_events: a record is the same record only with the same bytes

A topic deleted and created again restarts its offsets, so (topic, partition, offset) alone would make a
new bad record look like one already parked and drop it. The downgrade keeps the oldest row of each
(topic, partition, offset).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_parked_events_record", "parked_events", type_="unique")
    op.create_index(
        "uq_parked_events_record",
        "parked_events",
        ["topic", "partition", "offset", sa.text("md5(value)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_parked_events_record", table_name="parked_events")
    op.execute(
        'DELETE FROM parked_events AS newer USING parked_events AS older WHERE newer.topic = older.topic '
        'AND newer.partition = older.partition AND newer."offset" = older."offset" AND newer.id > older.id'
    )
    op.create_unique_constraint("uq_parked_events_record", "parked_events", ["topic", "partition", "offset"])
