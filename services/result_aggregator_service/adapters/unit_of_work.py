"""The PostgreSQL unit of work: one transaction holding the effects and the claims of a micro-batch."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Self
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.parked_events import SqlAlchemyParkedEventStore
from result_aggregator_service.adapters.repository import SqlAlchemyBatchRepository
from result_aggregator_service.adapters.tables import processed_events
from result_aggregator_service.service_layer.ports import BatchChange, RawRecord


class SqlAlchemyUnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.batches = SqlAlchemyBatchRepository(session)
        self.parked = SqlAlchemyParkedEventStore(session)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()  # a no-op after commit: nothing uncommitted survives the block

    async def claim(self, claims: Sequence[tuple[UUID, RawRecord]]) -> set[UUID]:
        if not claims:
            return set()
        rows = [
            {"event_id": event_id, "topic": r.topic, "partition": r.partition, "offset": r.offset}
            for event_id, r in claims
        ]
        statement = insert(processed_events).on_conflict_do_nothing().returning(processed_events.c.event_id)
        result = await self._session.execute(statement, rows)
        return set(result.scalars().all())

    async def applied(self, event_ids: Collection[UUID]) -> set[UUID]:
        if not event_ids:
            return set()
        result = await self._session.execute(
            select(processed_events.c.event_id).where(processed_events.c.event_id.in_(list(event_ids)))
        )
        return set(result.scalars().all())

    async def flush(self) -> list[BatchChange]:
        return await self.batches.flush()

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()
