"""The Redis adapters on a real Redis: generation-guarded fills, holds across a commit, notices, hints."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from result_aggregator_service.adapters.response_cache import (
    CHANGES_CHANNEL,
    RedisResponseCache,
    RedisSeenEventHints,
    batch_key,
    user_key,
)
from result_aggregator_service.config import Settings
from result_aggregator_service.service_layer.ports import BatchChange


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def cache(redis: Redis) -> RedisResponseCache:
    return RedisResponseCache(redis, ttl_seconds=60)


def a_change(user: str = "u") -> BatchChange:
    return BatchChange(f"batch-{uuid.uuid4()}", 3, frozenset({f"{user}-{uuid.uuid4()}"}))


async def test_a_fill_with_the_generation_it_read_is_served(cache: RedisResponseCache) -> None:
    key = batch_key(f"b-{uuid.uuid4()}")
    value, generation = await cache.read(key)
    assert value is None
    assert await cache.fill(key, generation, b"answer")
    assert (await cache.read(key))[0] == b"answer"


async def test_a_reader_that_started_before_an_invalidation_cannot_put_its_answer_back(
    cache: RedisResponseCache,
) -> None:
    change = a_change()
    key = batch_key(change.batch_id)
    _, generation = await cache.read(key)
    await cache.batches_changing([change])
    await cache.batches_changed([change])
    assert not await cache.fill(key, generation, b"stale")
    assert (await cache.read(key))[0] is None


async def test_nothing_is_cached_while_a_commit_holds_the_key(cache: RedisResponseCache) -> None:
    change = a_change()
    key, page_key = batch_key(change.batch_id), user_key(next(iter(change.user_ids)))
    await cache.batches_changing([change])
    _, generation = await cache.read(key)
    assert not await cache.fill(key, generation, b"from before the commit")
    _, page_generation = await cache.read(page_key, "limit=20")
    assert not await cache.fill(page_key, page_generation, b"page", "limit=20")
    await cache.batches_changed([change])
    _, generation = await cache.read(key)
    assert await cache.fill(key, generation, b"after the commit")


async def test_invalidation_drops_the_batch_and_every_page_of_its_owner(cache: RedisResponseCache) -> None:
    change = a_change()
    key, page_key = batch_key(change.batch_id), user_key(next(iter(change.user_ids)))
    for k, page in ((key, ""), (page_key, "limit=20"), (page_key, "limit=5")):
        _, generation = await cache.read(k, page)
        assert await cache.fill(k, generation, b"cached", page)
    await cache.batches_changing([change])
    await cache.batches_changed([change])
    assert [(await cache.read(k, page))[0] for k, page in ((key, ""), (page_key, "limit=20"))] == [None, None]


async def test_a_committed_change_is_announced_with_its_version(redis: Redis, cache: RedisResponseCache) -> None:
    change = a_change()
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(CHANGES_CHANNEL)
        await cache.batches_changing([change])
        await cache.batches_changed([change])
        notices: list[dict[str, object]] = []
        async with asyncio.timeout(5):
            while not any(n.get("batch_id") == change.batch_id for n in notices):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message:
                    notices.append(json.loads(message["data"]))
    assert {"batch_id": change.batch_id, "version": 3} in notices


async def test_seen_hints_remember_applied_ids_and_answer_for_them_only(redis: Redis) -> None:
    hints = RedisSeenEventHints(redis, ttl_seconds=3600)
    applied, unseen = uuid.uuid4(), uuid.uuid4()
    await hints.remember([applied])
    assert await hints.seen([applied, unseen]) == {applied}


async def test_an_unreachable_redis_costs_the_hints_nothing_but_the_shortcut() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    hints = RedisSeenEventHints(unreachable, ttl_seconds=3600)
    assert await hints.seen([uuid.uuid4()]) == set()
    await hints.remember([uuid.uuid4()])
    await unreachable.aclose()
