"""The parked-events operations behind `ras parked` (brief, rule 7), one request scope each.

A replay releases the event's claim and ingests the stored record again in one transaction
(`process_batch` commits it), so a replay that fails again leaves the claim as it was. The row is marked
`replayed` just after; if the process dies in between, replaying it again re-applies an event the rules
fold idempotently.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.parked_events import (
    ParkedCount,
    ParkedEvent,
    ParkedFilter,
    SqlAlchemyParkedEventStore,
)
from result_aggregator_service.config import Settings
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, SeenEventHints, UnitOfWork

_log = structlog.get_logger(__name__)
PAGE = 500
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What became of one id: replayed, already_applied, discarded, still_failing, unknown or not_parked."""

    id: int
    result: str
    reason: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.result in {"replayed", "already_applied", "discarded"}

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


async def with_container(body: Callable[[AsyncContainer], Awaitable[T]]) -> T:
    """Run `body` with a container of its own (built from the environment's settings), closed after."""
    container = make_container(Settings())
    try:
        return await body(container)
    finally:
        await container.close()


async def listing(container: AsyncContainer, which: ParkedFilter, limit: int, after: int) -> list[ParkedEvent]:
    async with container() as request:
        return await (await _store(request)).list(which, limit, after)


async def counts(container: AsyncContainer, which: ParkedFilter) -> Sequence[ParkedCount]:
    async with container() as request:
        return await (await _store(request)).counts(which)


async def get(container: AsyncContainer, parked_id: int) -> ParkedEvent | None:
    async with container() as request:
        return await (await _store(request)).get(parked_id)


async def matching_ids(container: AsyncContainer, which: ParkedFilter, limit: int | None) -> list[int]:
    """The ids of every event that matches, oldest first (read in pages), at most `limit`."""
    ids: list[int] = []
    while limit is None or len(ids) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(ids))
        page = await listing(container, which, size, ids[-1] if ids else 0)
        ids += [parked.id for parked in page]
        if len(page) < size:
            break
    return ids


async def replay(container: AsyncContainer, parked_id: int) -> Outcome:
    async with container() as request:
        store = await _store(request)
        parked = await store.get(parked_id)
        if parked is None or parked.state != "parked":
            return _refused(parked_id, parked)
        if parked.event_id is not None:
            await store.release_claim(parked.event_id)
        uow, hints, sink = (
            await request.get(UnitOfWork),
            await request.get(SeenEventHints),
            await request.get(ChangeSink),
        )
        try:
            report = await process_batch([parked.record], uow, hints, sink)
        except Exception as error:  # shown to the operator; the rollback kept the claim
            _log.exception("replay_failed", parked_id=parked_id)
            return Outcome(parked_id, "still_failing", "internal", repr(error))
        if report.parked:
            return Outcome(parked_id, "still_failing", report.parked[0].reason.value, report.parked[0].error)
        applied = report.outcomes[parked.record.topic, "success"] > 0
        if not await store.resolve(parked_id, "replayed"):
            return _refused(parked_id, await store.get(parked_id))
        await (await request.get(AsyncSession)).commit()
    return Outcome(parked_id, "replayed" if applied else "already_applied")


async def discard(container: AsyncContainer, parked_id: int) -> Outcome:
    async with container() as request:
        store = await _store(request)
        if not await store.resolve(parked_id, "discarded"):
            return _refused(parked_id, await store.get(parked_id))
        await (await request.get(AsyncSession)).commit()
    return Outcome(parked_id, "discarded")


async def _store(request: AsyncContainer) -> SqlAlchemyParkedEventStore:
    # the request's one session: the same transaction as the request's UnitOfWork
    return SqlAlchemyParkedEventStore(await request.get(AsyncSession))


def _refused(parked_id: int, parked: ParkedEvent | None) -> Outcome:
    if parked is None:
        return Outcome(parked_id, "unknown", error="unknown id")
    return Outcome(parked_id, "not_parked", error=f"not parked: its state is {parked.state}")


def as_json(parked: ParkedEvent) -> dict[str, Any]:
    record = parked.record
    return {
        "id": parked.id,
        "state": parked.state,
        "reason": parked.reason,
        "error": parked.error,
        "event_id": str(parked.event_id) if parked.event_id else None,
        "parked_at": parked.parked_at.isoformat(),
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        **_bytes_field("key", record.key),
        **_bytes_field("value", record.value),
        "headers": [{"key": key, **_bytes_field("value", value)} for key, value in record.headers],
    }


def _bytes_field(name: str, raw: bytes | None) -> dict[str, str | None]:
    """The bytes as text when they are UTF-8, else base64, with the encoding named."""
    if raw is None:
        return {name: None}
    try:
        return {name: raw.decode("utf-8"), f"{name}_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {name: base64.b64encode(raw).decode("ascii"), f"{name}_encoding": "base64"}
