"""In-memory unit of work: the same contract as the PostgreSQL one, for fast tests of the service layer."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from uuid import UUID

from result_aggregator_service.domain.emissions import OutboxMessage, PublishedTopics, derive_outbox_messages
from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.domain.projection import BatchView, EssayView, project_batch, project_essay
from result_aggregator_service.service_layer.ports import BatchChange, ParkReason, RawRecord


@dataclass
class InMemoryStore:
    """What a database would hold, shared by the units of work of one test."""

    batches: dict[str, BatchResult] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    claims: dict[UUID, RawRecord] = field(default_factory=dict)
    parked: list[tuple[RawRecord, ParkReason, str, UUID | None]] = field(default_factory=list)
    views: dict[str, tuple[BatchView, list[EssayView]]] = field(default_factory=dict)
    outbox: list[OutboxMessage] = field(default_factory=list)  # in insertion order, one per event_id
    outbox_notices: int = 0  # commits that told the relay of new rows


class InMemoryBatchRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.saved: dict[str, BatchResult] = {}

    async def load(self, batch_ids: Collection[str]) -> None:
        return None

    async def get(self, batch_id: str) -> BatchResult:
        return self.saved.get(batch_id) or self._store.batches.get(batch_id) or BatchResult(batch_id)

    def save(self, batch: BatchResult) -> None:
        self.saved[batch.batch_id] = batch

    async def current(self, batch_ids: Collection[str]) -> list[BatchChange]:
        return [
            BatchChange.of(self._store.batches[b], self._store.versions.get(b, 0))
            for b in batch_ids
            if b in self._store.batches
        ]

    async def view(self, batch_id: str) -> tuple[BatchView, list[EssayView]] | None:
        return self._store.views.get(batch_id)


class InMemoryParkedEventStore:
    def __init__(self, pending: list[tuple[RawRecord, ParkReason, str, UUID | None]]) -> None:
        self._pending = pending

    async def park(self, record: RawRecord, reason: ParkReason, error: str, event_id: UUID | None = None) -> None:
        self._pending.append((record, reason, error, event_id))


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore, published: PublishedTopics | None = None) -> None:
        self._store = store
        self._published = published
        self._outbox: list[OutboxMessage] = []
        self._claims: dict[UUID, RawRecord] = {}
        self._parked: list[tuple[RawRecord, ParkReason, str, UUID | None]] = []
        self._flushed: dict[str, BatchResult] = {}
        self.batches = InMemoryBatchRepository(store)
        self.parked = InMemoryParkedEventStore(self._parked)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()

    async def claim(self, claims: Sequence[tuple[UUID, RawRecord]]) -> set[UUID]:
        fresh = {event_id: record for event_id, record in claims if event_id not in self._store.claims}
        self._claims.update(fresh)
        return set(fresh)

    async def applied(self, event_ids: Collection[UUID]) -> set[UUID]:
        return {event_id for event_id in event_ids if event_id in self._store.claims}

    async def flush(self) -> list[BatchChange]:
        self._flushed = {}
        changes: list[BatchChange] = []
        for batch_id, batch in self.batches.saved.items():
            before = self._store.batches.get(batch_id)
            if batch != before:
                self._flushed[batch_id] = batch
                version = self._store.versions.get(batch_id, 0) + 1
                changes.append(BatchChange.of(batch, version, before))
        if self._published is not None:
            pairs = [(self._store.batches.get(batch_id), batch) for batch_id, batch in self._flushed.items()]
            self._outbox = derive_outbox_messages(pairs, self._published)
        return changes

    async def commit(self) -> None:
        for batch_id, batch in self._flushed.items():
            self._store.batches[batch_id] = batch
            essays = [project_essay(essay) for _, essay in sorted(batch.essays.items())]
            self._store.views[batch_id] = (project_batch(batch), essays)
            self._store.versions[batch_id] = self._store.versions.get(batch_id, 0) + 1
        self._store.claims.update(self._claims)
        self._store.parked.extend(self._parked)
        written = {message.event_id for message in self._store.outbox}
        fresh = [message for message in self._outbox if message.event_id not in written]
        self._store.outbox.extend(fresh)
        self._store.outbox_notices += bool(fresh)
        self._discard_pending()

    async def rollback(self) -> None:
        self._discard_pending()

    def _discard_pending(self) -> None:
        self._flushed = {}
        self._outbox = []
        self._claims.clear()
        self._parked.clear()
        self.batches.saved.clear()
