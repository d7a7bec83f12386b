"""The PostgreSQL unit of work: one transaction holding the effects and the claims of a micro-batch."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Self
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.facts_cache import FactsCache
from result_aggregator_service.adapters.outbox import SqlAlchemyOutbox
from result_aggregator_service.adapters.parked_events import SqlAlchemyParkedEventStore
from result_aggregator_service.adapters.repository import SqlAlchemyBatchRepository
from result_aggregator_service.domain.emissions import PublishedTopics, derive_outbox_messages
from result_aggregator_service.service_layer.ports import BatchChange, RawRecord

# Claims, one statement per micro-batch: the ids returned are those not applied before.
_CLAIM = text(
    'INSERT INTO processed_events (event_id, topic, partition, "offset") SELECT * FROM unnest('
    "CAST(:ids AS uuid[]), CAST(:topics AS text[]), CAST(:partitions AS int4[]), CAST(:offsets AS int8[]))"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
_APPLIED = text("SELECT event_id FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))")


class SqlAlchemyUnitOfWork:
    def __init__(
        self, session: AsyncSession, cache: FactsCache | None = None, published: PublishedTopics | None = None
    ) -> None:
        """`published`: the topics of the events this service publishes; None: publishing is off."""
        self._session = session
        self._published = published
        self.batches = SqlAlchemyBatchRepository(session, cache)
        self.parked = SqlAlchemyParkedEventStore(session)
        self.outbox = SqlAlchemyOutbox(session)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()  # a no-op after commit: nothing uncommitted survives the block

    async def claim(self, claims: Sequence[tuple[UUID, RawRecord]]) -> set[UUID]:
        if not claims:
            return set()
        parameters = {
            "ids": [event_id for event_id, _ in claims],
            "topics": [record.topic for _, record in claims],
            "partitions": [record.partition for _, record in claims],
            "offsets": [record.offset for _, record in claims],
        }
        return set((await self._session.execute(_CLAIM, parameters)).scalars())

    async def applied(self, event_ids: Collection[UUID]) -> set[UUID]:
        if not event_ids:
            return set()
        return set((await self._session.execute(_APPLIED, {"ids": list(event_ids)})).scalars())

    async def flush(self) -> list[BatchChange]:
        changes = await self.batches.flush()
        if self._published is not None:
            await self.outbox.add(derive_outbox_messages(self.batches.flushed, self._published))
        return changes

    async def commit(self) -> None:
        await self._session.commit()
        self.batches.committed()

    async def rollback(self) -> None:
        await self._session.rollback()
