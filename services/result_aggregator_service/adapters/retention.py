"""Retention of the idempotency claims: `processed_events` rows older than the horizon, deleted in small
batches so no long transaction holds locks or bloats a snapshot.

Why exactly-once survives: a claim only matters while its event can still be delivered again, i.e. while
the record is on its topic (or a replay tool holds it). With a horizon longer than the topics' retention,
every record that can come back still finds its claim.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_PRUNE = text(
    "DELETE FROM processed_events WHERE event_id IN (SELECT event_id FROM processed_events"
    " WHERE processed_at < now() - CAST(:horizon AS interval) LIMIT :batch)"
)


async def prune_processed_events(sessions: async_sessionmaker[AsyncSession], horizon: timedelta, batch: int) -> int:
    """Delete claims older than `horizon`, `batch` rows per transaction; returns how many went."""
    pruned = 0
    while True:
        async with sessions() as session, session.begin():
            result = await session.execute(_PRUNE, {"horizon": horizon, "batch": batch})
        deleted = int(result.rowcount)  # type: ignore[attr-defined]
        pruned += deleted
        if deleted < batch:
            return pruned
