"""The change feed on a real Redis and in memory: the notices a commit announces reach the listeners of
its batch, its owners and its settled events alike; the Redis feed re-subscribes after its connection is
killed and tells every listener to re-read. The worker's records answer whether an event settled."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from dishka import AsyncContainer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huleedu_service_libs.retry import Backoff
from result_aggregator_service.adapters.change_feed import RedisChangeFeed
from result_aggregator_service.adapters.in_memory_reads import InMemoryReadModel, InMemoryResponseCache
from result_aggregator_service.adapters.response_cache import RedisResponseCache
from result_aggregator_service.config import Settings
from result_aggregator_service.live_changes import (
    RESYNC,
    BatchChanged,
    ChangeFeed,
    EventsSettled,
    Listener,
    Notice,
    batch_key,
    event_key,
    user_key,
)
from result_aggregator_service.service_layer.ports import BatchChange, ChangeSink, SettledEvents
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import ingest
from result_aggregator_service.views import SqlReadModel

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


@contextlib.asynccontextmanager
async def redis_feed(settings: Settings) -> AsyncIterator[tuple[RedisChangeFeed, ChangeSink]]:
    redis = Redis.from_url(settings.redis_url)
    feed = RedisChangeFeed(settings.redis_url, Backoff(0.05, 0.2))
    feed.start()
    try:
        await asyncio.wait_for(feed.subscribed.wait(), 5)
        yield feed, RedisResponseCache(redis, 60)
    finally:
        await feed.stop()
        await redis.aclose()


@contextlib.asynccontextmanager
async def memory_feed(settings: Settings) -> AsyncIterator[tuple[ChangeFeed, ChangeSink]]:
    cache = InMemoryResponseCache()
    yield cache.feed, cache


async def received(listener: Listener[Notice], wanted: Notice) -> None:
    async with asyncio.timeout(5):
        while (notice := await listener.next(None)) != wanted:
            assert notice is RESYNC or isinstance(notice, BatchChanged | EventsSettled), notice


@pytest.mark.parametrize("feed_of", [redis_feed, memory_feed])
async def test_a_commit_reaches_the_listeners_of_its_batch_its_owner_and_its_events(
    settings: Settings,
    feed_of: Callable[[Settings], contextlib.AbstractAsyncContextManager[tuple[ChangeFeed, ChangeSink]]],
) -> None:
    change = BatchChange(f"batch-{uuid.uuid4()}", 7, frozenset({f"user-{uuid.uuid4()}"}))
    applied, parked = uuid.uuid4(), uuid.uuid4()
    settled = EventsSettled(frozenset({applied}), frozenset({parked}))
    async with feed_of(settings) as (feed, sink):
        with (
            feed.listening([batch_key(change.batch_id)]) as of_batch,
            feed.listening([user_key(next(iter(change.user_ids)))]) as of_owner,
            feed.listening([event_key(applied), event_key(parked)]) as of_events,
        ):
            await sink.batches_changing([change])
            await sink.batches_changed([change], SettledEvents([applied], [parked]))
            expected = BatchChanged(change.batch_id, 7, change.user_ids)
            await received(of_batch, expected)
            await received(of_owner, expected)
            await received(of_events, settled)


async def test_the_redis_feed_resubscribes_after_its_connection_is_killed_and_says_resync(
    settings: Settings,
) -> None:
    change = BatchChange(f"batch-{uuid.uuid4()}", 1)
    async with redis_feed(settings) as (feed, sink):
        admin = Redis.from_url(settings.redis_url)
        try:
            with feed.listening([batch_key(change.batch_id)]) as listener:
                ours = [c["id"] for c in await admin.client_list() if c["name"] == feed.client_name]
                assert len(ours) == 1  # one connection, however many listeners
                assert await admin.client_kill_filter(_id=ours[0]) == 1
                async with asyncio.timeout(5):
                    assert await listener.next(None) is RESYNC
                await sink.batches_changed([change])
                await received(listener, BatchChanged(change.batch_id, 1))
        finally:
            await admin.aclose()


async def test_the_workers_records_say_whether_an_event_was_applied_or_parked_as_the_fake_does(
    api_services: AsyncContainer,
) -> None:
    batch_id = samples.new_id("batch-")
    applied = samples.batch_registered(batch_id, ["e1"])
    rejected = samples.batch_registered(samples.new_id("batch-"), ["e1"])
    rejected["data"]["expected_essay_count"] = -1
    await ingest(api_services, [applied, rejected])
    real = SqlReadModel(await api_services.get(async_sessionmaker[AsyncSession]))
    fake = InMemoryReadModel()
    fake.settled = {uuid.UUID(applied["event_id"]): "applied", uuid.UUID(rejected["event_id"]): "parked"}
    for event_id in (uuid.UUID(applied["event_id"]), uuid.UUID(rejected["event_id"]), uuid.uuid4()):
        assert await real.event_outcome(event_id) == await fake.event_outcome(event_id)
    assert await real.event_outcome(uuid.UUID(rejected["event_id"])) == "parked"


@pytest.mark.parametrize("after_seconds", [0.0, 0.001, 0.5])
async def test_the_redis_feed_stops_whenever_it_is_stopped(settings: Settings, after_seconds: float) -> None:
    feed = RedisChangeFeed(settings.redis_url, Backoff(0.05, 0.2))
    feed.start()
    await asyncio.sleep(after_seconds)  # connecting, subscribing or subscribed
    async with asyncio.timeout(3):
        await feed.stop()
