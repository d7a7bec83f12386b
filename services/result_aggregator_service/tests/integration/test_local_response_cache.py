"""The API's process-local layer over the Redis response cache, on a real Redis: it keeps the shared
cache's contract (the same tests), serves hits without asking Redis, and drops a copy as soon as the
worker's invalidation call returns, hold or release; without its subscription it keeps nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis

from result_aggregator_service.adapters.local_response_cache import (
    InvalidationListener,
    LocalEntries,
    LocallyCachedResponses,
)
from result_aggregator_service.adapters.response_cache import (
    FLUSH_ALL,
    INVALIDATIONS_CHANNEL,
    RedisResponseCache,
    batch_key,
)
from result_aggregator_service.config import Settings
from result_aggregator_service.service_layer.ports import BatchChange

from .test_response_cache import ResponseCacheContract, a_change


class LocalOverRedis(LocallyCachedResponses):
    """One API process's cache (local layer over Redis) that also invalidates like a worker."""

    def __init__(self, redis: Redis, listener: InvalidationListener, entries: LocalEntries) -> None:
        self.shared = RedisResponseCache(redis, 60, max_pages=20)
        super().__init__(self.shared, entries, listener)

    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        await self.shared.batches_changing(changes)

    async def batches_changed(self, changes: Sequence[BatchChange]) -> None:
        await self.shared.batches_changed(changes)


async def subscribed(listener: InvalidationListener) -> None:
    for _ in range(200):
        if listener.drain():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the listener did not subscribe within 2 s")


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@contextlib.asynccontextmanager
async def api_process(settings: Settings, redis: Redis) -> AsyncIterator[LocalOverRedis]:
    """An API process's cache with its listener subscribed."""
    entries = LocalEntries(max_entries=100, ttl_seconds=30)
    listener = InvalidationListener(settings.redis_url, entries)
    listener.start()
    try:
        await subscribed(listener)
        yield LocalOverRedis(redis, listener, entries)
    finally:
        await listener.stop()


@pytest.fixture
async def process(settings: Settings, redis: Redis) -> AsyncIterator[LocalOverRedis]:
    async with api_process(settings, redis) as cache:
        yield cache


@pytest.fixture
async def other_process(settings: Settings, redis: Redis) -> AsyncIterator[LocalOverRedis]:
    async with api_process(settings, redis) as cache:
        yield cache


class TestLocalLayerKeepsTheCacheContract(ResponseCacheContract):
    @pytest.fixture
    def caches(self, process: LocalOverRedis, other_process: LocalOverRedis) -> tuple[LocalOverRedis, LocalOverRedis]:
        return process, other_process


async def cached_locally(cache: LocalOverRedis, redis: Redis, batch_id: str, value: bytes) -> None:
    """Fill `value` through `cache`, then delete the Redis copy behind its back (no announcement): a
    read that still answers `value` was served from the process's memory."""
    _, generation = await cache.read_batch(batch_id)
    assert generation is not None and await cache.fill_batch(batch_id, generation, value, 1)
    await redis.delete(batch_key(batch_id))


async def test_a_hit_is_served_from_memory_without_asking_redis(process: LocalOverRedis, redis: Redis) -> None:
    batch_id = f"b-{uuid.uuid4()}"
    await cached_locally(process, redis, batch_id, b"answer")
    assert (await process.read_batch(batch_id))[0] == b"answer"


async def test_a_redis_hit_is_kept_locally_too(
    process: LocalOverRedis, other_process: LocalOverRedis, redis: Redis
) -> None:
    batch_id = f"b-{uuid.uuid4()}"
    _, generation = await other_process.read_batch(batch_id)
    assert generation is not None and await other_process.fill_batch(batch_id, generation, b"shared", 1)
    assert (await process.read_batch(batch_id))[0] == b"shared"  # from Redis, and now kept
    await redis.delete(batch_key(batch_id))
    assert (await process.read_batch(batch_id))[0] == b"shared"


@pytest.mark.parametrize("step", ["hold", "release"])
async def test_every_process_drops_its_copy_before_the_workers_invalidation_returns(
    process: LocalOverRedis, other_process: LocalOverRedis, redis: Redis, step: str
) -> None:
    change = a_change()
    await cached_locally(process, redis, change.batch_id, b"before the commit")
    await cached_locally(other_process, redis, change.batch_id, b"before the commit")
    if step == "hold":
        await other_process.batches_changing([change])
    else:
        await other_process.batches_changing([change])
        await other_process.batches_changed([change])
    # no pause: the very next read of each process must not answer the old copy
    assert (await process.read_batch(change.batch_id))[0] is None
    assert (await other_process.read_batch(change.batch_id))[0] is None


async def test_a_flush_announcement_drops_every_copy(process: LocalOverRedis, redis: Redis) -> None:
    ids = [f"b-{uuid.uuid4()}" for _ in range(3)]
    for batch_id in ids:
        await cached_locally(process, redis, batch_id, b"x")
    await redis.publish(INVALIDATIONS_CHANNEL, FLUSH_ALL)
    assert [(await process.read_batch(batch_id))[0] for batch_id in ids] == [None, None, None]


async def test_without_its_subscription_the_process_keeps_nothing_and_then_recovers(
    process: LocalOverRedis, redis: Redis
) -> None:
    batch_id = f"b-{uuid.uuid4()}"
    await cached_locally(process, redis, batch_id, b"old")
    # the listener's connection dies: an announcement could now be missed, so the copy must go
    killed = await redis.client_kill_filter(_type="pubsub")
    assert killed >= 1
    assert (await process.read_batch(batch_id))[0] is None
    _, generation = await process.read_batch(batch_id)
    assert generation is not None and await process.fill_batch(batch_id, generation, b"new", 2)
    await redis.delete(batch_key(batch_id))
    # after it has subscribed again (within a few seconds) copies are kept again
    for _ in range(100):
        _, generation = await process.read_batch(batch_id)
        assert generation is not None and await process.fill_batch(batch_id, generation, b"new", 2)
        await redis.delete(batch_key(batch_id))
        if (await process.read_batch(batch_id))[0] == b"new":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the local layer did not come back within 5 s")
