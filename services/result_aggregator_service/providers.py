"""The composition root: the only place that builds engines and clients and picks the adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from dishka import AsyncContainer, Provider, Scope, make_async_container, provide
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from huleedu_service_libs.retry import Backoff
from result_aggregator_service.adapters.change_feed import RedisChangeFeed
from result_aggregator_service.adapters.facts_cache import FactsCache
from result_aggregator_service.adapters.local_response_cache import (
    InvalidationListener,
    LocalEntries,
    LocallyCachedResponses,
)
from result_aggregator_service.adapters.read_model_swap import NoSeenEventHints, SilentChanges
from result_aggregator_service.adapters.response_cache import RedisResponseCache
from result_aggregator_service.adapters.seen_hints import RedisSeenEventHints
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.config import Settings
from result_aggregator_service.domain.emissions import PublishedTopics
from result_aggregator_service.live_changes import ChangeFeed
from result_aggregator_service.live_reads import BatchSnapshots, StreamSlots
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.read_service import ReadModel, ReadService, ResponseCache
from result_aggregator_service.service_layer.ports import ChangeSink, SeenEventHints, UnitOfWork
from result_aggregator_service.views import SqlReadModel


class ServiceProvider(Provider):
    def __init__(self, settings: Settings, *, ping_at_checkout: bool = True) -> None:
        super().__init__()
        self._settings = settings
        self._ping_at_checkout = ping_at_checkout

    @provide(scope=Scope.APP)
    def settings(self) -> Settings:
        return self._settings

    @provide(scope=Scope.APP)
    async def engine(self, settings: Settings) -> AsyncIterator[AsyncEngine]:
        engine = _engine(settings, pool_pre_ping=self._ping_at_checkout)
        yield engine
        await engine.dispose()

    @provide(scope=Scope.APP)
    def session_factory(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
        return async_sessionmaker(engine, expire_on_commit=False)

    @provide(scope=Scope.APP)
    async def redis(self, settings: Settings) -> AsyncIterator[Redis]:
        # short timeouts: an unreachable Redis must fail fast so callers fall back or retry
        client = Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
        yield client
        await client.aclose()

    @provide(scope=Scope.APP)
    def metrics(self) -> ServiceMetrics:
        return ServiceMetrics()

    @provide(scope=Scope.APP)
    def backoff(self, settings: Settings) -> Backoff:
        return Backoff(settings.retry_initial_seconds, settings.retry_max_seconds)

    @provide(scope=Scope.APP)
    def redis_response_cache(self, redis: Redis, settings: Settings) -> RedisResponseCache:
        return RedisResponseCache(redis, settings.cache_ttl_seconds, settings.cache_max_pages_per_user)

    @provide(scope=Scope.APP)
    async def response_cache(self, shared: RedisResponseCache, settings: Settings) -> AsyncIterator[ResponseCache]:
        if settings.api_local_cache_entries == 0:
            yield shared
            return
        entries = LocalEntries(settings.api_local_cache_entries, settings.api_local_cache_seconds)
        listener = InvalidationListener(settings.redis_url, entries)
        listener.start()
        yield LocallyCachedResponses(shared, entries, listener)
        await listener.stop()

    @provide(scope=Scope.APP)
    def change_sink(self, cache: RedisResponseCache, settings: Settings) -> ChangeSink:
        if settings.read_model_schema:  # a rebuild's shadow: no one reads it yet
            return SilentChanges()
        return cache

    @provide(scope=Scope.APP)
    async def read_model(self, settings: Settings) -> AsyncIterator[ReadModel]:
        # The API's queries are single statements (a page may add a count): on an autocommit engine of
        # their own a miss costs the ping and the query, not BEGIN, ping, ROLLBACK (asyncpg's pre-ping
        # outside autocommit), BEGIN, query, ROLLBACK. Built only where the read model is asked for.
        engine = _engine(settings, isolation_level="AUTOCOMMIT")
        yield SqlReadModel(async_sessionmaker(engine))
        await engine.dispose()

    @provide(scope=Scope.APP)
    def read_service(self, cache: ResponseCache, model: ReadModel, metrics: ServiceMetrics) -> ReadService:
        return ReadService(cache, model, metrics)

    @provide(scope=Scope.APP)
    async def change_feed(self, settings: Settings, backoff: Backoff) -> AsyncIterator[ChangeFeed]:
        """The API process's one subscription to the worker's change notices."""
        feed = RedisChangeFeed(settings.redis_url, backoff)
        feed.start()
        yield feed
        await feed.stop()

    @provide(scope=Scope.APP)
    def batch_snapshots(self, feed: ChangeFeed, reads: ReadService) -> BatchSnapshots:
        return BatchSnapshots(feed, reads)

    @provide(scope=Scope.APP)
    def stream_slots(self, settings: Settings) -> StreamSlots:
        return StreamSlots(settings.live_feed_max_streams)

    @provide(scope=Scope.APP)
    def seen_hints(self, redis: Redis, settings: Settings) -> SeenEventHints:
        if settings.read_model_schema:
            return NoSeenEventHints()
        return RedisSeenEventHints(redis, settings.seen_hint_ttl_seconds)

    @provide(scope=Scope.REQUEST)
    async def session(self, factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
        async with factory() as session:
            yield session

    @provide(scope=Scope.APP)
    def facts_cache(self, settings: Settings, metrics: ServiceMetrics) -> FactsCache:
        return FactsCache(settings.facts_cache_batches, metrics.facts_cache_lookups, metrics.facts_cache_evictions)

    @provide(scope=Scope.APP)
    def published_topics(self, settings: Settings) -> PublishedTopics | None:
        """None when publishing is off: the units of work then write nothing to the outbox."""
        if not settings.publish_enabled:
            return None
        return PublishedTopics(
            settings.results_ready_topic, settings.assessment_completed_topic, settings.teacher_notification_topic
        )

    @provide(scope=Scope.REQUEST)
    def unit_of_work(self, session: AsyncSession, cache: FactsCache, published: PublishedTopics | None) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(session, cache, published)


def _engine(settings: Settings, **options: Any) -> AsyncEngine:
    """Every connection bounded on both sides: the client gives up on a statement (a black-holed
    connection), the server cancels one that runs or waits for a lock too long, and ends a transaction
    left idle (a frozen client holding row locks). All of them are transient to the worker: it pauses
    and retries."""

    def milliseconds(seconds: float) -> str:
        return str(int(seconds * 1000))

    # a rebuild's shadow worker reaches its own schema only (its parked and outbox rows stay there too)
    schema = {"search_path": f'"{settings.read_model_schema}"'} if settings.read_model_schema else {}
    options.setdefault("pool_pre_ping", True)

    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        connect_args={
            "timeout": 5,
            "command_timeout": settings.database_command_timeout_seconds,
            "server_settings": {
                "statement_timeout": milliseconds(settings.database_statement_timeout_seconds),
                "lock_timeout": milliseconds(settings.database_lock_timeout_seconds),
                "idle_in_transaction_session_timeout": milliseconds(settings.database_idle_in_transaction_seconds),
                **schema,
            },
        },
        **options,
    )


def make_container(settings: Settings, *extra: Provider, ping_at_checkout: bool = True) -> AsyncContainer:
    """The one container of a process (worker, API or test); `extra` adds framework providers.
    `ping_at_checkout=False`: the engine hands out pooled connections untested (for a caller that
    retries a failed transaction, which a lost connection then is)."""
    return make_async_container(ServiceProvider(settings, ping_at_checkout=ping_at_checkout), *extra)
