"""The response cache on a real Redis and in memory (one contract, so the fake cannot drift), plus
what only Redis has: change notices, invalidation while Redis is full, page TTLs, the seen hints."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from result_aggregator_service.adapters.in_memory_reads import InMemoryResponseCache
from result_aggregator_service.adapters.response_cache import (
    CHANGES_CHANNEL,
    RedisResponseCache,
    essays_key,
    user_key,
)
from result_aggregator_service.adapters.seen_hints import RedisSeenEventHints
from result_aggregator_service.config import Settings
from result_aggregator_service.service_layer.ports import BatchChange

Cache = RedisResponseCache | InMemoryResponseCache


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


def a_change(version: int = 3) -> BatchChange:
    return BatchChange(f"batch-{uuid.uuid4()}", version, frozenset({f"user-{uuid.uuid4()}"}))


def owner(change: BatchChange) -> str:
    return next(iter(change.user_ids))


async def committed(cache: Cache, change: BatchChange) -> None:
    await cache.batches_changing([change])
    await cache.batches_changed([change])


class ResponseCacheContract:
    """Each test gets `cache` and `other`: two processes' caches over one store."""

    @pytest.fixture
    def caches(self) -> tuple[Cache, Cache]:
        raise NotImplementedError

    async def test_a_fill_with_the_generation_it_read_is_served(self, caches: tuple[Cache, Cache]) -> None:
        cache, _ = caches
        batch_id = f"b-{uuid.uuid4()}"
        value, generation = await cache.read_batch(batch_id)
        assert value is None and generation is not None
        assert await cache.fill_batch(batch_id, generation, b"answer", 1)
        assert (await cache.read_batch(batch_id))[0] == b"answer"

    async def test_a_reader_that_started_before_an_invalidation_cannot_put_its_answer_back(
        self, caches: tuple[Cache, Cache]
    ) -> None:
        cache, _ = caches
        change = a_change()
        _, generation = await cache.read_batch(change.batch_id)
        await committed(cache, change)
        assert generation is not None and not await cache.fill_batch(change.batch_id, generation, b"stale", 3)
        assert (await cache.read_batch(change.batch_id))[0] is None

    async def test_nothing_is_cached_while_a_commit_holds_the_key(self, caches: tuple[Cache, Cache]) -> None:
        cache, _ = caches
        change = a_change()
        await cache.batches_changing([change])
        _, generation = await cache.read_batch(change.batch_id)
        assert generation is not None and not await cache.fill_batch(change.batch_id, generation, b"before", 3)
        _, page_generation = await cache.read_page(owner(change), "20:0:")
        assert page_generation is not None and not await cache.fill_page(owner(change), "20:0:", page_generation, b"p")
        await cache.batches_changed([change])
        _, generation = await cache.read_batch(change.batch_id)
        assert generation is not None and await cache.fill_batch(change.batch_id, generation, b"after", 3)

    async def test_one_worker_releasing_its_hold_leaves_another_workers_hold_in_place(
        self, caches: tuple[Cache, Cache]
    ) -> None:
        first, second = caches
        change = a_change()
        await first.batches_changing([change])
        await second.batches_changing([change])
        await first.batches_changed([change])  # the second worker has not committed yet
        _, generation = await first.read_batch(change.batch_id)
        assert generation is not None and not await first.fill_batch(change.batch_id, generation, b"old", 3)
        await second.batches_changed([change])
        _, generation = await first.read_batch(change.batch_id)
        assert generation is not None and await first.fill_batch(change.batch_id, generation, b"new", 3)

    async def test_a_status_older_than_a_commit_under_way_is_never_cached_even_without_a_hold(
        self, caches: tuple[Cache, Cache]
    ) -> None:
        cache, _ = caches
        change = a_change(version=5)
        await committed(cache, change)  # the hold is gone; the fence (version 5) stays
        _, generation = await cache.read_batch(change.batch_id)
        assert generation is not None and not await cache.fill_batch(change.batch_id, generation, b"v4", 4)
        assert await cache.fill_batch(change.batch_id, generation, b"v5", 5)

    async def test_invalidation_drops_the_batch_and_every_page_of_its_owner(self, caches: tuple[Cache, Cache]) -> None:
        cache, _ = caches
        change = a_change()
        _, generation = await cache.read_batch(change.batch_id)
        assert generation is not None and await cache.fill_batch(change.batch_id, generation, b"cached", 1)
        for page in ("20:0:", "5:0:"):
            _, generation = await cache.read_page(owner(change), page)
            assert generation is not None and await cache.fill_page(owner(change), page, generation, b"cached")
        await committed(cache, change)
        assert (await cache.read_batch(change.batch_id))[0] is None
        assert (await cache.read_page(owner(change), "20:0:"))[0] is None

    async def test_a_user_has_at_most_the_configured_number_of_cached_pages(self, caches: tuple[Cache, Cache]) -> None:
        cache, _ = caches
        user_id = f"user-{uuid.uuid4()}"
        kept = 0
        for offset in range(25):
            _, generation = await cache.read_page(user_id, f"20:{offset}:")
            kept += generation is not None and await cache.fill_page(user_id, f"20:{offset}:", generation, b"p")
        assert kept == 20
        assert (await cache.read_page(user_id, "20:0:"))[0] == b"p"
        assert (await cache.read_page(user_id, "20:24:"))[0] is None

    async def test_an_essay_is_filled_and_invalidated_under_its_batch(self, caches: tuple[Cache, Cache]) -> None:
        cache, other = caches
        change = a_change(version=4)
        value, generation = await cache.read_essay(change.batch_id, "e1")
        assert value is None and generation is not None
        assert await cache.fill_essay(change.batch_id, "e1", generation, b"e1@4", 4)
        assert (await other.read_essay(change.batch_id, "e1"))[0] == b"e1@4"
        assert (await other.read_essay(change.batch_id, "e2"))[0] is None

        await other.batches_changing([replace(change, version=5)])
        assert (await cache.read_essay(change.batch_id, "e1"))[0] is None  # gone from the start of the commit
        _, generation = await cache.read_essay(change.batch_id, "e1")
        assert generation is not None and not await cache.fill_essay(change.batch_id, "e1", generation, b"held", 5)
        await other.batches_changed([replace(change, version=5)])
        assert not await cache.fill_essay(change.batch_id, "e1", generation, b"read before", 5)  # generation moved
        _, generation = await cache.read_essay(change.batch_id, "e1")
        assert generation is not None and not await cache.fill_essay(change.batch_id, "e1", generation, b"e1@4", 4)
        assert await cache.fill_essay(change.batch_id, "e1", generation, b"e1@5", 5)
        assert (await cache.read_essay(change.batch_id, "e1"))[0] == b"e1@5"


class TestRedisResponseCache(ResponseCacheContract):
    @pytest.fixture
    def caches(self, redis: Redis) -> tuple[Cache, Cache]:
        return RedisResponseCache(redis, 60, max_pages=20), RedisResponseCache(redis, 60, max_pages=20)


class TestInMemoryResponseCache(ResponseCacheContract):
    @pytest.fixture
    def caches(self) -> tuple[Cache, Cache]:
        cache = InMemoryResponseCache(60, max_pages=20)
        return cache, cache.another_process()


async def test_a_page_fill_never_renews_the_users_ttl(redis: Redis) -> None:
    cache = RedisResponseCache(redis, 60)
    user_id = f"user-{uuid.uuid4()}"
    _, generation = await cache.read_page(user_id, "20:0:")
    assert generation is not None and await cache.fill_page(user_id, "20:0:", generation, b"p")
    await redis.expire(user_key(user_id), 5)
    assert await cache.fill_page(user_id, "5:0:", generation, b"p")
    assert 0 < await redis.ttl(user_key(user_id)) <= 5


async def test_a_batchs_essays_expire_a_ttl_after_the_first_fill(redis: Redis) -> None:
    cache, batch_id = RedisResponseCache(redis, 60), f"batch-{uuid.uuid4()}"
    _, generation = await cache.read_essay(batch_id, "e1")
    assert generation is not None and await cache.fill_essay(batch_id, "e1", generation, b"e", 1)
    assert 0 < await redis.ttl(essays_key(batch_id)) <= 60
    await redis.expire(essays_key(batch_id), 5)
    assert await cache.fill_essay(batch_id, "e2", generation, b"e", 1)
    assert 0 < await redis.ttl(essays_key(batch_id)) <= 5


async def test_invalidation_works_while_redis_is_full(redis: Redis) -> None:
    cache, change = RedisResponseCache(redis, 60), a_change()
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", str(used + 500_000))
    try:
        with pytest.raises(ResponseError, match="maxmemory"):
            for _ in range(10_000):
                await redis.set(f"ras:test:filler:{uuid.uuid4()}", b"x" * 1000, ex=60)
        await committed(cache, change)
    finally:
        await redis.config_set("maxmemory", "0")
        fillers = [key async for key in redis.scan_iter("ras:test:filler:*")]
        if fillers:
            await redis.delete(*fillers)


async def test_a_committed_change_is_announced_with_its_version(redis: Redis) -> None:
    cache, change = RedisResponseCache(redis, 60), a_change()
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(CHANGES_CHANNEL)
        await committed(cache, change)
        notices: list[dict[str, object]] = []
        async with asyncio.timeout(5):
            while not any(n.get("batch_id") == change.batch_id for n in notices):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message:
                    notices.append(json.loads(message["data"]))
    assert {"batch_id": change.batch_id, "version": 3, "user_ids": [owner(change)]} in notices


async def test_an_unreachable_redis_is_no_cache_on_the_read_path() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    cache = RedisResponseCache(unreachable, 60)
    assert await cache.read_batch("b") == (None, None)
    assert not await cache.fill_batch("b", "0", b"answer", 1)
    await unreachable.aclose()


async def test_seen_hints_remember_applied_ids_and_answer_for_them_only(redis: Redis) -> None:
    hints = RedisSeenEventHints(redis, ttl_seconds=3600)
    applied, unseen = uuid.uuid4(), uuid.uuid4()
    await hints.remember([applied])
    assert await hints.seen([applied, unseen]) == {applied}


async def test_seen_hints_find_ids_remembered_on_any_day_within_the_ttl(redis: Redis) -> None:
    hints = RedisSeenEventHints(redis, ttl_seconds=2 * 86_400)
    two_days_ago, today, unseen = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await redis.sadd(f"ras:seen:{datetime.now(UTC).date() - timedelta(days=2)}", str(two_days_ago))
    await hints.remember([today])
    assert await hints.seen([unseen, two_days_ago, today]) == {two_days_ago, today}


async def test_an_unreachable_redis_costs_the_hints_nothing_but_the_shortcut() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    hints = RedisSeenEventHints(unreachable, ttl_seconds=3600)
    assert await hints.seen([uuid.uuid4()]) == set()
    await hints.remember([uuid.uuid4()])
    await unreachable.aclose()


async def test_a_rebuilds_flush_drops_every_answer_and_refuses_fills_read_before_it(settings: Settings) -> None:
    flushed_db = settings.redis_url.rsplit("/", 1)[0] + "/4"  # a flush drops every cached answer of its database
    async with Redis.from_url(flushed_db) as redis:
        cache, change = RedisResponseCache(redis, 60), a_change()
        _, generation = await cache.read_batch(change.batch_id)
        _, page_generation = await cache.read_page(owner(change), "20:0:")
        assert generation is not None and page_generation is not None
        kept = a_change()
        _, kept_generation = await cache.read_batch(kept.batch_id)
        assert kept_generation is not None and await cache.fill_batch(kept.batch_id, kept_generation, b"old", 3)

        assert await cache.flush() >= 1
        assert (await cache.read_batch(kept.batch_id))[0] is None  # cached before: gone
        assert not await cache.fill_batch(change.batch_id, generation, b"read before", 3)  # read before: refused
        assert not await cache.fill_page(owner(change), "20:0:", page_generation, b"read before")
        _, generation = await cache.read_batch(change.batch_id)
        assert generation is not None and await cache.fill_batch(change.batch_id, generation, b"read after", 3)
        assert (await cache.read_batch(change.batch_id))[0] == b"read after"
