"""Bounded database waits: a row lock held past lock_timeout (a frozen worker, an operator's open
transaction) makes the worker pause and retry, never park; it applies the event once the lock goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dishka import AsyncContainer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from result_aggregator_service.adapters.tables import parked_events
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.micro_batches import ingest_until_applied
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.providers import make_container
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import record_of

pytestmark = pytest.mark.infra


def retries(metrics: ServiceMetrics) -> float:
    return metrics.registry.get_sample_value("ras_transient_failures_total", {"operation": "ingest"}) or 0.0


@pytest.fixture
async def short_timeouts(settings: Settings) -> AsyncIterator[AsyncContainer]:
    container = make_container(
        settings.model_copy(update={"database_lock_timeout_seconds": 0.3, "database_statement_timeout_seconds": 2.0})
    )
    yield container
    await container.close()


async def test_a_row_lock_held_past_the_lock_timeout_pauses_the_worker_and_parks_nothing(
    short_timeouts: AsyncContainer,
) -> None:
    batch_id = samples.new_id("batch-")
    registration, slot = samples.batch_registered(batch_id, ["e1"]), samples.slot_assigned(batch_id, "e1")
    await ingest_until_applied(short_timeouts, [record_of(registration)])
    sessions = await short_timeouts.get(async_sessionmaker[AsyncSession])
    metrics = await short_timeouts.get(ServiceMetrics)
    retries_before = retries(metrics)

    async with sessions() as holder:  # someone else's transaction keeps the batch's row locked
        await holder.execute(text("SELECT 1 FROM batches WHERE batch_id = :id FOR UPDATE"), {"id": batch_id})
        applying = asyncio.create_task(ingest_until_applied(short_timeouts, [record_of(slot)]))
        await asyncio.sleep(1.5)  # several lock timeouts
        assert not applying.done()
        await holder.rollback()
    await asyncio.wait_for(applying, 30)

    assert retries(metrics) > retries_before
    async with sessions() as session, SqlAlchemyUnitOfWork(session) as uow:
        essay = (await uow.batches.get(batch_id)).essays["e1"]
        parked = await session.execute(
            select(func.count()).select_from(parked_events).where(parked_events.c.value == record_of(slot).value)
        )
    assert essay.slot is not None
    assert parked.scalar_one() == 0
