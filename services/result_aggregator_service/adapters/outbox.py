"""The PostgreSQL outbox writer: a micro-batch's due messages in one statement, in its transaction."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.tables import OUTBOX_CHANNEL
from result_aggregator_service.domain.emissions import OutboxMessage

# Rows in the order given (the relay publishes by id); a message already written (same event_id) is kept
# as first written. NOTIFY only when a row went in: it is delivered when the transaction commits.
_INSERT = text(
    "WITH inserted AS (INSERT INTO outbox (event_id, topic, key, value, headers)"
    " SELECT m.event_id, m.topic, m.key, m.value, CAST(m.headers AS jsonb) FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:topics AS text[]), CAST(:keys AS bytea[]), CAST(:values AS bytea[]),"
    " CAST(:headers AS text[])) WITH ORDINALITY AS m(event_id, topic, key, value, headers, n) ORDER BY m.n"
    " ON CONFLICT (event_id) DO NOTHING RETURNING 1)"
    " SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify(:channel, '') END FROM inserted"
)


class SqlAlchemyOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, messages: Sequence[OutboxMessage]) -> int:
        """Insert the messages not written before; return how many went in."""
        if not messages:
            return 0
        parameters = {
            "ids": [m.event_id for m in messages],
            "topics": [m.topic for m in messages],
            "keys": [m.key for m in messages],
            "values": [m.value for m in messages],
            "headers": [orjson.dumps(m.headers).decode() for m in messages],
            "channel": OUTBOX_CHANNEL,
        }
        inserted, _ = (await self._session.execute(_INSERT, parameters)).one()
        return int(inserted)
