"""parked_events.headers: keys base64-encoded like the values

A Kafka header key may hold any character, NUL included, which JSONB cannot store: parking such a
record failed, and the worker retried it forever. Keys are now kept as their bytes (base64).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rewrite(to_key: str, convert: str) -> None:
    op.execute(
        f"""
        UPDATE parked_events SET headers = coalesce((
            SELECT jsonb_agg(jsonb_build_object('{to_key}', {convert}, 'value_b64', h ->> 'value_b64') ORDER BY n)
            FROM jsonb_array_elements(headers) WITH ORDINALITY AS t(h, n)
        ), '[]'::jsonb)
        WHERE jsonb_array_length(headers) > 0
        """
    )


def upgrade() -> None:
    _rewrite("key_b64", "translate(encode(convert_to(h ->> 'key', 'UTF8'), 'base64'), E'\\n', '')")


def downgrade() -> None:
    _rewrite("key", "convert_from(decode(h ->> 'key_b64', 'base64'), 'UTF8')")
