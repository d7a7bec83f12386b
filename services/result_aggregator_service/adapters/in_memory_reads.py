"""In-memory read side: a response cache (also a change sink) and a read model, for fast route tests.

They keep the Redis and PostgreSQL adapters' rules (generations, owned holds, version fences, the page
cap, newest-first pages): tests/integration/test_response_cache.py runs one contract on both caches,
tests/integration/test_read_side_parity.py compares both read models.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from common_core.enums import BatchStatus
from result_aggregator_service.adapters.response_cache import HOLD_SECONDS
from result_aggregator_service.api_models import (
    BatchStatusResponse,
    EssayDetailResponse,
    Pagination,
    UserBatchesResponse,
)
from result_aggregator_service.live_changes import BatchChanged, EventsSettled, InMemoryChangeFeed
from result_aggregator_service.read_service import EventOutcome
from result_aggregator_service.service_layer.ports import NOTHING_SETTLED, BatchChange, SettledEvents

_tokens = itertools.count(1)


@dataclass
class _CacheState:
    """What several processes' caches share (Redis, in production)."""

    values: dict[str, tuple[bytes, float]] = field(default_factory=dict)  # key -> (value, expires at)
    pages: dict[str, dict[str, bytes]] = field(default_factory=dict)
    pages_expire: dict[str, float] = field(default_factory=dict)
    essays: dict[str, tuple[dict[str, bytes], float]] = field(default_factory=dict)  # batch -> (answers, expires)
    generations: dict[str, int] = field(default_factory=dict)
    holds: dict[str, dict[int, float]] = field(default_factory=dict)  # key -> owner -> deadline
    fences: dict[str, int] = field(default_factory=dict)
    available: bool = True


class InMemoryResponseCache:
    """Announces the changes and settled events it is told of on `feed`, as the Redis cache publishes them."""

    def __init__(
        self,
        ttl_seconds: int = 300,
        max_pages: int = 20,
        state: _CacheState | None = None,
        feed: InMemoryChangeFeed | None = None,
    ) -> None:
        self.state = state if state is not None else _CacheState()
        self.feed = feed if feed is not None else InMemoryChangeFeed()
        self._ttl = ttl_seconds
        self._max_pages = max_pages
        self._token = next(_tokens)

    def another_process(self) -> InMemoryResponseCache:
        """A cache of another process over the same store (its holds are its own)."""
        return InMemoryResponseCache(self._ttl, self._max_pages, self.state, self.feed)

    async def read_batch(self, batch_id: str) -> tuple[bytes | None, str | None]:
        if not self.state.available:
            return None, None
        stored = self.state.values.get(f"batch:{batch_id}")
        value = stored[0] if stored is not None and stored[1] > time.monotonic() else None
        return value, self._generation(f"batch:{batch_id}")

    async def read_essay(self, batch_id: str, essay_id: str) -> tuple[bytes | None, str | None]:
        if not self.state.available:
            return None, None
        answers, expires = self.state.essays.get(batch_id, ({}, 0.0))
        return (answers.get(essay_id) if expires > time.monotonic() else None), self._generation(f"batch:{batch_id}")

    async def read_page(self, user_id: str, page: str) -> tuple[bytes | None, str | None]:
        if not self.state.available:
            return None, None
        key = f"user:{user_id}"
        if self.state.pages_expire.get(key, 0.0) <= time.monotonic():
            self.state.pages.pop(key, None)
        return self.state.pages.get(key, {}).get(page), self._generation(key)

    async def fill_batch(self, batch_id: str, generation: str, value: bytes, version: int) -> bool:
        key = f"batch:{batch_id}"
        if not self._may_fill(key, generation) or version < self.state.fences.get(batch_id, 0):
            return False
        self.state.values[key] = (value, time.monotonic() + self._ttl)
        return True

    async def fill_essay(self, batch_id: str, essay_id: str, generation: str, value: bytes, version: int) -> bool:
        if not self._may_fill(f"batch:{batch_id}", generation) or version < self.state.fences.get(batch_id, 0):
            return False
        answers, expires = self.state.essays.get(batch_id) or ({}, time.monotonic() + self._ttl)
        answers[essay_id] = value
        self.state.essays[batch_id] = (answers, expires)
        return True

    async def fill_page(self, user_id: str, page: str, generation: str, value: bytes) -> bool:
        key = f"user:{user_id}"
        pages = self.state.pages.setdefault(key, {})
        if not self._may_fill(key, generation) or (page not in pages and len(pages) >= self._max_pages):
            return False
        pages[page] = value
        self.state.pages_expire.setdefault(key, time.monotonic() + self._ttl)
        return True

    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        deadline = time.monotonic() + HOLD_SECONDS
        for key in self._invalidate(changes):
            self.state.holds.setdefault(key, {})[self._token] = deadline
        for change in changes:
            self.state.fences[change.batch_id] = max(change.version, self.state.fences.get(change.batch_id, 0))

    async def batches_changed(self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED) -> None:
        for key in self._invalidate(changes):
            self.state.holds.get(key, {}).pop(self._token, None)
        for change in changes:
            self.feed.publish(BatchChanged(change.batch_id, change.version, change.user_ids))
        if settled:
            self.feed.publish(EventsSettled(frozenset(settled.applied), frozenset(settled.parked)))

    def _invalidate(self, changes: Sequence[BatchChange]) -> list[str]:
        if not self.state.available:
            raise ConnectionError("the in-memory cache is switched off")
        keys = [f"batch:{c.batch_id}" for c in changes] + [f"user:{u}" for c in changes for u in c.user_ids]
        for key in keys:
            self.state.values.pop(key, None)
            self.state.pages.pop(key, None)
            self.state.pages_expire.pop(key, None)
            self.state.generations[key] = self.state.generations.get(key, 0) + 1
        for change in changes:
            self.state.essays.pop(change.batch_id, None)
        return keys

    def _generation(self, key: str) -> str:
        return str(self.state.generations.get(key, 0))

    def _may_fill(self, key: str, generation: str) -> bool:
        if not self.state.available or self._generation(key) != generation:
            return False
        now = time.monotonic()
        return not any(deadline > now for deadline in self.state.holds.get(key, {}).values())


class InMemoryReadModel:
    """Batch answers put in by the test, with the internal status the list filter uses, and essay answers
    (by default each batch essay's item with its batch id; `put_essay` gives the fields only an essay has)."""

    def __init__(self) -> None:
        self.batches: dict[str, tuple[BatchStatusResponse, int, BatchStatus]] = {}
        self.essays: dict[tuple[str, str], EssayDetailResponse] = {}
        self.queries = 0
        self.gate: asyncio.Event | None = None  # when set to an unset event, queries wait for it
        self.settled: dict[UUID, EventOutcome] = {}  # what processed_events / parked_events would say

    def put(self, response: BatchStatusResponse, version: int, status: BatchStatus) -> None:
        self.batches[response.batch_id] = (response, version, status)

    async def batch_status(self, batch_id: str) -> tuple[BatchStatusResponse, int] | None:
        await self._query()
        found = self.batches.get(batch_id)
        return None if found is None else (found[0], found[1])

    def put_essay(self, essay: EssayDetailResponse) -> None:
        self.essays[essay.batch_id, essay.essay_id] = essay

    async def essay(self, batch_id: str, essay_id: str) -> tuple[EssayDetailResponse, int] | None:
        await self._query()
        found = self.batches.get(batch_id)
        if found is None:
            return None
        response, version, _ = found
        for item in response.essays:
            if item.essay_id == essay_id:
                detail = self.essays.get((batch_id, essay_id))
                return detail or EssayDetailResponse(batch_id=batch_id, **item.model_dump()), version
        return None

    async def user_batches(
        self, user_id: str, limit: int, offset: int, status: BatchStatus | None
    ) -> UserBatchesResponse:
        await self._query()
        matching = [
            response
            for response, _, internal in self.batches.values()
            if response.user_id == user_id and (status is None or internal == status)
        ]
        matching.sort(key=lambda r: (r.created_at, r.batch_id), reverse=True)
        return UserBatchesResponse(
            batches=matching[offset : offset + limit],
            pagination=Pagination(limit=limit, offset=offset, total=len(matching)),
        )

    async def event_outcome(self, event_id: UUID) -> EventOutcome | None:
        await self._query()
        return self.settled.get(event_id)

    async def _query(self) -> None:
        self.queries += 1
        if self.gate is not None:
            await self.gate.wait()
