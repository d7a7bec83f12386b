"""Claims older than the retention horizon are pruned in small batches; younger ones stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from dishka import AsyncContainer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from result_aggregator_service.adapters.retention import prune_processed_events
from result_aggregator_service.adapters.tables import processed_events

pytestmark = pytest.mark.infra


async def test_claims_older_than_the_horizon_are_pruned_and_younger_ones_kept(container: AsyncContainer) -> None:
    sessions = await container.get(async_sessionmaker[AsyncSession])
    old, young = [uuid.uuid4() for _ in range(7)], [uuid.uuid4() for _ in range(3)]
    async with sessions() as session, session.begin():
        for event_id, age_days in [*((e, 45) for e in old), *((e, 5) for e in young)]:
            await session.execute(
                text(
                    'INSERT INTO processed_events (event_id, topic, partition, "offset", processed_at)'
                    " VALUES (:id, 'retention-test', 0, 0, now() - make_interval(days => :age))"
                ),
                {"id": event_id, "age": age_days},
            )

    pruned = await prune_processed_events(sessions, timedelta(days=30), batch=2)

    async with sessions() as session:
        left = await session.execute(
            select(processed_events.c.event_id).where(processed_events.c.event_id.in_(old + young))
        )
        remaining = set(left.scalars())
        stale = await session.execute(
            select(func.count())
            .select_from(processed_events)
            .where(processed_events.c.processed_at < func.now() - timedelta(days=30))
        )
    assert remaining == set(young)
    assert pruned >= len(old)
    assert stale.scalar_one() == 0
