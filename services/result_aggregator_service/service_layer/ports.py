"""The roles the service layer needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.domain.projection import BatchView, EssayView


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record exactly as it arrived."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp_ms: int | None = None
    unreadable: str | None = None  # why the Kafka client could not decode it (then only its place is known)


class ParkReason(StrEnum):
    UNDECODABLE = "undecodable"
    SCHEMA_INVALID = "schema_invalid"
    UNKNOWN_TOPIC = "unknown_topic"
    REJECTED = "rejected"
    INTERNAL = "internal"  # an unexpected, non-transient failure while applying the event
    UNREADABLE = "unreadable"  # the Kafka client cannot decode the record: parked by its place, then skipped
    UNSTORABLE = "unstorable"  # not even parkable in full: kept with its value's bytes only
    UNSUPPORTED_VERSION = "unsupported_version"  # a schema_version this release cannot read: replay after an upgrade


@dataclass(frozen=True)
class BatchChange:
    """A committed change to one batch: what the caches and change listeners need to know."""

    batch_id: str
    version: int
    user_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, batch: BatchResult, version: int, before: BatchResult | None = None) -> BatchChange:
        """The change to `batch`; its owners before and after (a user's cached list pages show it)."""
        owners = {b.registration.user_id for b in (before, batch) if b is not None and b.registration is not None}
        return cls(batch.batch_id, version, frozenset(owners))


@dataclass(frozen=True)
class SettledEvents:
    """The events a micro-batch settled: applied (now or before: a redelivery) or parked. Announced with
    its changes, so a reader waiting for its own event knows the state it reads includes it."""

    applied: Sequence[UUID] = ()
    parked: Sequence[UUID] = ()

    def __bool__(self) -> bool:
        return bool(self.applied or self.parked)


NOTHING_SETTLED = SettledEvents()


class BatchRepository(Protocol):
    async def load(self, batch_ids: Collection[str]) -> None:
        """Fetch (and lock, where the store can) these batches for this unit of work."""

    async def get(self, batch_id: str) -> BatchResult:
        """The batch as this unit of work sees it; an empty one if nothing is known about it yet."""

    def save(self, batch: BatchResult) -> None:
        """Keep the new state; it is written when the unit of work commits."""

    async def current(self, batch_ids: Collection[str]) -> list[BatchChange]:
        """The committed version and owner of these batches (those that exist), without locking them."""

    async def view(self, batch_id: str) -> tuple[BatchView, list[EssayView]] | None:
        """What is stored for the API to show of the batch and its essays (by essay id); None if unknown."""


class ParkedEventStore(Protocol):
    async def park(self, record: RawRecord, reason: ParkReason, error: str, event_id: UUID | None = None) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: the effects of a micro-batch and the claims of its events, all or nothing."""

    @property
    def batches(self) -> BatchRepository: ...

    @property
    def parked(self) -> ParkedEventStore: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def claim(self, claims: Sequence[tuple[UUID, RawRecord]]) -> set[UUID]:
        """Record these events as applied; return the ids not recorded before (the rest are duplicates)."""

    async def applied(self, event_ids: Collection[UUID]) -> set[UUID]:
        """Which of these events were applied already (read-only; confirms the fast-path hints)."""

    async def flush(self) -> list[BatchChange]:
        """Write the saved batches inside the transaction; return what will change when it commits."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class SeenEventHints(Protocol):
    """A fast, untrusted memory of applied event ids (a hit is confirmed by UnitOfWork.applied)."""

    async def seen(self, event_ids: Collection[UUID]) -> set[UUID]: ...

    async def remember(self, event_ids: Collection[UUID]) -> None: ...


class ChangeSink(Protocol):
    """Keeps cached responses from outliving a commit: told just before it and again just after."""

    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        """Before the commit: drop the affected cached responses and hold off refills of them."""

    async def batches_changed(self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED) -> None:
        """After the commit, before the offsets move: drop them again, release the hold, announce the
        changes and the settled events."""


@dataclass(frozen=True)
class OutboxRow:
    """One event waiting in the outbox, exactly as it goes on the wire (value: the complete envelope)."""

    id: int  # publish order
    event_id: UUID
    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class Delivery:
    """What the broker acknowledged of rows sent in order: the first `delivered`; `error` stopped the rest."""

    delivered: int
    error: Exception | None = None


class OutboxStore(Protocol):
    async def unpublished(self, limit: int) -> list[OutboxRow]:
        """The oldest rows not yet published, in id order."""

    async def mark_published(self, ids: Sequence[int]) -> None: ...


class EventPublisher(Protocol):
    async def publish(self, rows: Sequence[OutboxRow]) -> Delivery:
        """Send the rows in order, each on its topic with its key; wait for the broker's acknowledgements."""
