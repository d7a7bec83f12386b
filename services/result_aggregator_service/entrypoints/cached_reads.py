"""The API-level response cache on the read path: Redis first, PostgreSQL on a miss, one query per key.

- hit: the stored body and ETag are served as they are; PostgreSQL is not touched.
- miss: concurrent misses of one key (and one cache generation) share a single query in this process;
  the answer ("not found" included) is stored with `fill`, a compare-and-set on the generation read
  before the query, so an answer older than an invalidation never goes back into the cache. When the
  cache refuses it, the waiters that joined ask PostgreSQL themselves rather than trust it.
- Redis unavailable: counted as `error` and answered from PostgreSQL; the caller sees no error.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from dishka import Provider, Scope, provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from result_aggregator_service.adapters.response_cache import RedisResponseCache, is_redis_unavailable
from result_aggregator_service.entrypoints.circuit_breaker import DatabaseCircuit
from result_aggregator_service.metrics import ServiceMetrics

log = structlog.get_logger(__name__)

_NO_GENERATION = "<redis-unavailable>"


@dataclass(frozen=True)
class Rendered:
    """A serialized JSON answer and its ETag: what the route sends."""

    body: bytes
    etag: str


def _encode(answer: Rendered | None) -> bytes:
    """The cached form: `etag\nbody`, or nothing at all for "not found" (also cached, also invalidated)."""
    return b"" if answer is None else answer.etag.encode() + b"\n" + answer.body


def _decode(stored: bytes) -> Rendered | None:
    if not stored:
        return None
    etag, _, body = stored.partition(b"\n")
    return Rendered(body, etag.decode())


Loader = Callable[[AsyncSession], Awaitable[Rendered | None]]
_Flight = Callable[[], Coroutine[Any, Any, tuple[Rendered | None, bool]]]  # -> (answer, safe to share)
_FlightKey = tuple[str, str, str]  # (cache key, page, generation)


class CachedReads:
    def __init__(
        self,
        cache: RedisResponseCache,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ServiceMetrics,
        circuit: DatabaseCircuit,
    ) -> None:
        self._cache = cache
        self._sessions = sessions
        self._metrics = metrics
        self._circuit = circuit
        self._flights: dict[_FlightKey, asyncio.Task[tuple[Rendered | None, bool]]] = {}

    async def get(self, route: str, key: str, page: str, load: Loader) -> Rendered | None:
        """The answer for `key` (and `page` of it); None when `load` finds nothing."""
        try:
            stored, generation = await self._cache.read(key, page)
        except Exception as error:
            if not is_redis_unavailable(error):
                raise
            log.warning("response_cache_unavailable", operation="read", error=str(error))
            self._metrics.cache_lookups.labels(route, "error").inc()
            return await self._single_flight((key, page, _NO_GENERATION), lambda: self._query(load))
        if stored is not None:
            self._metrics.cache_lookups.labels(route, "hit").inc()
            return _decode(stored)
        self._metrics.cache_lookups.labels(route, "miss").inc()
        return await self._single_flight((key, page, generation), lambda: self._query(load, key, page, generation))

    async def _query(
        self, load: Loader, key: str = "", page: str = "", generation: str = _NO_GENERATION
    ) -> tuple[Rendered | None, bool]:
        """Ask PostgreSQL, then offer the answer to the cache. An answer the cache refuses (the key was
        invalidated, or a commit is under way) may predate a commit: it is not shared with other waiters."""
        async with self._circuit.guard(), self._sessions() as session:
            answer = await load(session)
        if generation == _NO_GENERATION:  # no cache to tell whether a commit landed since: never shared
            return answer, False
        try:
            return answer, await self._cache.fill(key, generation, _encode(answer), page)
        except Exception as error:
            if not is_redis_unavailable(error):
                raise
            log.warning("response_cache_unavailable", operation="fill", error=str(error))
            return answer, False

    async def _single_flight(self, flight: _FlightKey, start: _Flight) -> Rendered | None:
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

    def _landed(self, flight: _FlightKey, task: asyncio.Task[tuple[Rendered | None, bool]]) -> None:
        if self._flights.get(flight) is task:
            del self._flights[flight]
        if not task.cancelled():
            task.exception()  # retrieved here, so an error no waiter saw is not reported as lost


class ApiProvider(Provider):
    """What the API process adds to the service's container."""

    @provide(scope=Scope.APP)
    def cached_reads(
        self,
        cache: RedisResponseCache,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ServiceMetrics,
        circuit: DatabaseCircuit,
    ) -> CachedReads:
        return CachedReads(cache, sessions, metrics, circuit)
