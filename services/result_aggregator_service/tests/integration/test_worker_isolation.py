"""The worker's last line of defence: a micro-batch that fails for a reason retrying will not cure is
applied record by record, and only the record that fails is parked (`internal`), never skipped."""

from __future__ import annotations

import pytest
from dishka import AsyncContainer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from result_aggregator_service.adapters.tables import parked_events
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.entrypoints.worker import ingest_until_applied
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import record_of

pytestmark = pytest.mark.infra


async def test_a_record_the_database_refuses_is_parked_and_its_micro_batch_neighbours_applied(
    container: AsyncContainer,
) -> None:
    good_id = samples.new_id("batch-")
    too_long_id = "b" * 300  # valid for the contract (a string), longer than the read model's column
    good, refused = samples.batch_registered(good_id, ["e1"]), samples.batch_registered(too_long_id, ["e1"])
    records = [record_of(good), record_of(refused)]

    await ingest_until_applied(container, records)

    sessions = await container.get(async_sessionmaker[AsyncSession])
    async with sessions() as session, SqlAlchemyUnitOfWork(session) as uow:
        assert (await uow.batches.get(good_id)).is_registered
    async with sessions() as session:
        query = select(parked_events.c.reason, parked_events.c.error, parked_events.c.value).where(
            parked_events.c.topic == records[1].topic,
            parked_events.c.partition == records[1].partition,
            parked_events.c.offset == records[1].offset,
        )
        reason, error, value = (await session.execute(query)).one()
    assert reason == "internal"
    assert "too long" in error
    assert value == records[1].value
