"""Redis at `maxmemory` with `noeviction` under a steady load: the cache and the hints are optional, so the
worker goes on applying events (its invalidations must not need free memory); nothing is lost or stale.

Issue 13 expected consumption to pause here; against today's worker it does not (the hint writes fail and
are skipped, the invalidation script still runs), so this is a plain test that keeps it that way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from result_aggregator_service.config import Settings
from tests.faults.bench import FaultBench
from tests.faults.profile import Profile
from tests.faults.verifier import Figures

pytestmark = pytest.mark.infra


@pytest.fixture
async def redis_admin(settings: Settings) -> AsyncIterator[Redis]:
    """The stack's Redis, with its memory settings restored afterwards whatever the test did."""
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    saved = {name: str((await redis.config_get(name))[name]) for name in ("maxmemory", "maxmemory-policy")}
    try:
        yield redis
    finally:
        for name, value in saved.items():
            await redis.config_set(name, value)
        await redis.aclose()


async def test_redis_full_with_noeviction_does_not_stop_consumption(
    bench: FaultBench, profile: Profile, report: Callable[[Figures], Figures], redis_admin: Redis
) -> None:
    await bench.start(workers=1)
    load = bench.run_load()
    await bench.progress_after(bench.cleared("worker started"), "the worker's start")
    await bench.until_published(profile.events // 4)
    used = int((await redis_admin.info("memory"))["used_memory"])
    await redis_admin.config_set("maxmemory-policy", "noeviction")
    await redis_admin.config_set("maxmemory", max(used // 2, 1))  # below what it holds: every write is refused
    full = time.monotonic()
    await asyncio.sleep(profile.fault_seconds)
    applied_while_full = bench.tracker.claimed_between(full + 1.0, time.monotonic())
    await redis_admin.config_set("maxmemory", 0)
    bench.cleared(f"Redis full (noeviction) for {profile.fault_seconds:.0f}s, then given memory")
    figures = report(await bench.verify("Redis at maxmemory with noeviction", load))
    figures.assert_clean()
    assert applied_while_full > 0, "the worker stopped applying events while Redis refused writes"
