"""The read side's service: answers from the response cache, or from the read model on a miss.

- hit: the stored body and ETag are served as they are; the read model is not asked.
- miss: concurrent misses of one key (and one cache generation) share a single query in this process;
  the answer ("not found" included) is offered to the cache with the generation read before the query
  (and, for a batch, its version): the cache refuses an answer older than an invalidation or a commit
  under way. When it refuses, the waiters that joined ask the read model themselves rather than trust it.
- cache unavailable (generation None): counted as `error` and answered from the read model.
- an essay's answer is cached under its batch (same generation, holds and version fence), so whatever
  invalidates the batch invalidates its essays; an unknown essay is not cached (the batch's essays bound
  what its cache can hold).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from uuid import UUID

from common_core.enums import BatchStatus
from result_aggregator_service.api_models import (
    BatchStatusResponse,
    EssayDetailResponse,
    UserBatchesQuery,
    UserBatchesResponse,
)
from result_aggregator_service.metrics import ServiceMetrics

BATCH_STATUS_ROUTE = "/internal/v1/batches/<batch_id>/status"
USER_BATCHES_ROUTE = "/internal/v1/batches/user/<user_id>"
ESSAY_ROUTE = "/internal/v1/batches/<batch_id>/essays/<essay_id>"
EventOutcome = Literal["applied", "parked"]
_ETAG_SAFE = re.compile(r"^[!#-~]{1,200}$")  # visible ASCII without the double quote


class ResponseCache(Protocol):
    """Cached answers. A read returns the stored value (None: a miss) and the generation to fill with,
    or (None, None) when the cache cannot be asked; a fill says whether the cache kept the value."""

    async def read_batch(self, batch_id: str) -> tuple[bytes | None, str | None]: ...

    async def fill_batch(self, batch_id: str, generation: str, value: bytes, version: int) -> bool: ...

    async def read_essay(self, batch_id: str, essay_id: str) -> tuple[bytes | None, str | None]: ...

    async def fill_essay(self, batch_id: str, essay_id: str, generation: str, value: bytes, version: int) -> bool: ...

    async def read_page(self, user_id: str, page: str) -> tuple[bytes | None, str | None]: ...

    async def fill_page(self, user_id: str, page: str, generation: str, value: bytes) -> bool: ...


class ReadModel(Protocol):
    """The read model's queries (views.py over PostgreSQL)."""

    async def batch_status(self, batch_id: str) -> tuple[BatchStatusResponse, int] | None:
        """The registered batch with its essays and its version; None unless it is registered."""

    async def essay(self, batch_id: str, essay_id: str) -> tuple[EssayDetailResponse, int] | None:
        """One essay of a registered batch's registration, with its batch's version; else None."""

    async def user_batches(
        self, user_id: str, limit: int, offset: int, status: BatchStatus | None
    ) -> UserBatchesResponse: ...

    async def event_outcome(self, event_id: UUID) -> EventOutcome | None:
        """Whether the event was applied or parked (by the worker's own records); None: neither yet."""


@dataclass(frozen=True)
class Rendered:
    """A serialized JSON answer and its ETag: what the route sends."""

    body: bytes
    etag: str


def encode(answer: Rendered | None) -> bytes:
    """The cached form: `etag\nbody`, or nothing at all for "not found" (also cached, also invalidated)."""
    return b"" if answer is None else answer.etag.encode() + b"\n" + answer.body


def decode(stored: bytes) -> Rendered | None:
    if not stored:
        return None
    etag, _, body = stored.partition(b"\n")
    return Rendered(body, etag.decode())


def batch_etag(batch_id: str, version: int) -> str:
    """Weak, from the version the worker bumps on every committed change."""
    return f'W/"{_tag(batch_id)}-{version}"'


def essay_etag(batch_id: str, essay_id: str, version: int) -> str:
    """The batch's version: every change to one of its essays bumps it."""
    return f'W/"{_tag(f"{batch_id}/{essay_id}")}-{version}"'


def _tag(name: str) -> str:
    return name if _ETAG_SAFE.match(name) else hashlib.sha256(name.encode()).hexdigest()[:16]


def page_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


_Flight = Callable[[], Coroutine[Any, Any, tuple[Rendered | None, bool]]]  # -> (answer, safe to share)


class ReadService:
    def __init__(self, cache: ResponseCache, model: ReadModel, metrics: ServiceMetrics) -> None:
        self._cache = cache
        self._model = model
        self._flights: dict[tuple[str, ...], asyncio.Task[tuple[Rendered | None, bool]]] = {}
        lookups = metrics.cache_lookups
        self._count = {
            (route, result): lookups.labels(route, result).inc
            for route in (BATCH_STATUS_ROUTE, USER_BATCHES_ROUTE, ESSAY_ROUTE)
            for result in ("hit", "miss", "error")
        }

    async def batch_status(self, batch_id: str) -> Rendered | None:
        """The batch's answer; None unless it is registered."""
        stored, generation = await self._cache.read_batch(batch_id)
        if stored is not None:
            self._count[BATCH_STATUS_ROUTE, "hit"]()
            return decode(stored)
        self._count[BATCH_STATUS_ROUTE, "miss" if generation is not None else "error"]()
        load = functools.partial(self._load_batch, batch_id, generation)
        return await self._single_flight(("batch", batch_id, generation or ""), load)

    async def essay(self, batch_id: str, essay_id: str) -> Rendered | None:
        """The essay's answer; None unless it is one of a registered batch's essays."""
        stored, generation = await self._cache.read_essay(batch_id, essay_id)
        if stored is not None:
            self._count[ESSAY_ROUTE, "hit"]()
            return decode(stored)
        self._count[ESSAY_ROUTE, "miss" if generation is not None else "error"]()
        load = functools.partial(self._load_essay, batch_id, essay_id, generation)
        return await self._single_flight(("essay", batch_id, essay_id, generation or ""), load)

    async def user_batches(self, user_id: str, query: UserBatchesQuery) -> Rendered:
        """One page of the user's batches (a page always exists, if empty)."""
        page = f"{query.limit}:{query.offset}:{query.status or ''}"
        stored, generation = await self._cache.read_page(user_id, page)
        if stored is not None and (answer := decode(stored)) is not None:
            self._count[USER_BATCHES_ROUTE, "hit"]()
            return answer
        self._count[USER_BATCHES_ROUTE, "miss" if generation is not None else "error"]()
        load = functools.partial(self._load_page, user_id, page, query, generation)
        answer = await self._single_flight(("page", user_id, page, generation or ""), load)
        assert answer is not None  # a page is always rendered
        return answer

    async def event_outcome(self, event_id: UUID) -> EventOutcome | None:
        """Asked once per wait, never cached: only the worker's records can say."""
        return await self._model.event_outcome(event_id)

    async def _load_batch(self, batch_id: str, generation: str | None) -> tuple[Rendered | None, bool]:
        found = await self._model.batch_status(batch_id)
        answer, version = None, 0
        if found is not None:
            response, version = found
            answer = Rendered(response.model_dump_json().encode(), batch_etag(batch_id, version))
        if generation is None:  # no cache to tell whether a commit landed since: never shared
            return answer, False
        return answer, await self._cache.fill_batch(batch_id, generation, encode(answer), version)

    async def _load_essay(self, batch_id: str, essay_id: str, generation: str | None) -> tuple[Rendered | None, bool]:
        found = await self._model.essay(batch_id, essay_id)
        if found is None:  # not cached (any id can be asked for), so nothing tells whether it is still news
            return None, False
        response, version = found
        answer = Rendered(response.model_dump_json().encode(), essay_etag(batch_id, essay_id, version))
        if generation is None:
            return answer, False
        return answer, await self._cache.fill_essay(batch_id, essay_id, generation, encode(answer), version)

    async def _load_page(
        self, user_id: str, page: str, query: UserBatchesQuery, generation: str | None
    ) -> tuple[Rendered | None, bool]:
        found = await self._model.user_batches(user_id, query.limit, query.offset, query.status)
        body = found.model_dump_json().encode()
        answer = Rendered(body, page_etag(body))
        if generation is None:
            return answer, False
        return answer, await self._cache.fill_page(user_id, page, generation, encode(answer))

    async def _single_flight(self, flight: tuple[str, ...], start: _Flight) -> Rendered | None:
        """Join the query already running for `flight`, or start it. A waiter that goes away (a client
        disconnect) does not cancel the query the others wait for."""
        task = self._flights.get(flight)
        leading = task is None
        if task is None:
            task = asyncio.create_task(start())
            self._flights[flight] = task
            task.add_done_callback(functools.partial(self._landed, flight))
        answer, shareable = await asyncio.shield(task)
        if leading or shareable:
            return answer
        answer, _ = await start()  # the shared answer may be older than a commit this request followed
        return answer

    def _landed(self, flight: tuple[str, ...], task: asyncio.Task[tuple[Rendered | None, bool]]) -> None:
        if self._flights.get(flight) is task:
            del self._flights[flight]
        if not task.cancelled():
            task.exception()  # retrieved here, so an error no waiter saw is not reported as lost
