"""The in-memory read model pages, filters and finds essays like the PostgreSQL one (so route tests on the fake
hold)."""

from __future__ import annotations

import pytest
from dishka import AsyncContainer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common_core.enums import BatchStatus
from result_aggregator_service.adapters.in_memory_reads import InMemoryReadModel
from result_aggregator_service.adapters.tables import batches
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import ingest
from result_aggregator_service.views import SqlReadModel

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


async def test_the_in_memory_read_model_answers_every_page_and_filter_as_postgresql_does(
    api_services: AsyncContainer,
) -> None:
    user_id = samples.new_id("parity-user-")
    batch_ids = [samples.new_id("batch-") for _ in range(5)]
    events = [samples.batch_registered(b, [f"{b}-e1", f"{b}-e2"], user_id=user_id) for b in batch_ids]
    events += [samples.pipeline_completed(b) for b in batch_ids[:2]]
    events.append(samples.spellcheck_result(batch_ids[0], f"{batch_ids[0]}-e1"))
    await ingest(api_services, events)
    real = SqlReadModel(await api_services.get(async_sessionmaker[AsyncSession]))

    fake = InMemoryReadModel()
    engine = await api_services.get(AsyncEngine)
    async with engine.connect() as connection:
        chosen = select(batches.c.batch_id, batches.c.status).where(batches.c.batch_id.in_(batch_ids))
        statuses = dict((await connection.execute(chosen)).all())
    for batch_id in batch_ids:
        found = await real.batch_status(batch_id)
        assert found is not None
        fake.put(found[0], found[1], BatchStatus(statuses[batch_id]))
        assert await fake.batch_status(batch_id) == found

    for batch_id, essay_id in [(b, f"{b}-e{i}") for b in batch_ids for i in (1, 2)] + [(batch_ids[0], "x")]:
        # the fake derives an essay from its batch's item; only the fields an item lacks may differ
        essay = await real.essay(batch_id, essay_id)
        lacking = {"text_storage_id": None, "spellcheck_metrics": None}
        assert await fake.essay(batch_id, essay_id) == (essay and (essay[0].model_copy(update=lacking), essay[1]))
    assert await real.essay("never-seen", "e1") is None and await fake.essay("never-seen", "e1") is None

    for status in (None, BatchStatus.COMPLETED_SUCCESSFULLY, BatchStatus.AWAITING_CONTENT_VALIDATION):
        for limit, offset in ((20, 0), (2, 0), (2, 2), (2, 4), (3, 10)):
            expected = await real.user_batches(user_id, limit, offset, status)
            assert await fake.user_batches(user_id, limit, offset, status) == expected
