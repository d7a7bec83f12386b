"""`ras rebuild`: a new read model folded from the beginning of the topics, swapped in while the live one
serves.

1. A shadow schema migrated to head (adapters/read_model_swap.py) and a consumer group of its own.
2. Shadow workers: the worker engine (entrypoints/worker.py) as subprocesses, pointed at the shadow;
   they die with this process (a killed rebuild leaves no worker behind, and the live model untouched).
3. Progress from the group's committed offsets against the topics' offsets; caught up = lag 0 on every
   partition at two checks in a row.
4. The swap: one transaction (live writes wait while the shadow is confirmed to hold everything below
   the end offsets read under the lock, i.e. everything a live worker could have applied), then the
   response cache is flushed into the new epoch. A swap that cannot finish in time rolls back and is tried
   again; anything failing before the commit drops the shadow and leaves the live model as it was.
5. The retired read model is dropped after the grace period (or by the next rebuild).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from result_aggregator_service.adapters import read_model_swap as swap
from result_aggregator_service.adapters.response_cache import RedisResponseCache
from result_aggregator_service.config import Settings

_log = structlog.get_logger(__name__)
_PR_SET_PDEATHSIG = 1
SWAP_ATTEMPTS = 5


class RebuildFailed(RuntimeError):
    """The rebuild stopped before its swap; the live read model is untouched."""


@dataclass(frozen=True)
class Progress:
    done: int  # records the shadow has consumed (applied, parked or duplicates)
    total: int  # records on the topics now
    caught_up: bool


@dataclass(frozen=True)
class RebuildReport:
    epoch: int
    records: int
    build_seconds: float  # start of the shadow workers to caught up
    folded_records: int  # of `records`, those folded after the first commit (the rate's sample)
    folding_seconds: float  # the first commit to caught up: the rate without the workers' start
    writes_paused_seconds: float
    reads_paused_seconds: float
    retired_schema: str
    swap_attempts: int

    @property
    def events_per_second(self) -> float:
        return self.folded_records / self.folding_seconds if self.folding_seconds else 0.0


class Offsets:
    """The topics' offsets and a group's committed ones, read without joining the group."""

    def __init__(self, settings: Settings, group: str) -> None:
        servers = settings.kafka_bootstrap_servers
        self._admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=10_000)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
        self._topics, self._group = sorted(set(settings.subscribed_topics)), group
        self.partitions: list[TopicPartition] = []
        self.beginnings: dict[TopicPartition, int] = {}
        self._last_ends: dict[TopicPartition, int] | None = None

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()
        described = await self._admin.describe_topics(self._topics)
        self.partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        self.beginnings = await self._consumer.beginning_offsets(self.partitions)

    async def stop(self) -> None:
        # The rebuild's group is left behind (aiokafka 0.14 has no DeleteGroups call, and the killed shadow
        # members would keep it non-empty for a session timeout): the broker drops an empty group and its
        # offsets after `offsets.retention.minutes` (7 days by default).
        await self._consumer.stop()
        await self._admin.close()

    async def ends(self) -> dict[TopicPartition, int]:
        return dict(await self._consumer.end_offsets(self.partitions))

    async def committed(self) -> dict[TopicPartition, int]:
        found = await self._admin.list_consumer_group_offsets(self._group)
        offsets = {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}
        return {tp: offsets.get(tp, self.beginnings[tp]) for tp in self.partitions}

    async def progress(self) -> Progress:
        """Caught up: lag 0 on every partition against the end offsets of the previous check (under a
        steady load the newest records are always a moment ahead of any group's commit)."""
        committed, ends = await self.committed(), await self.ends()
        done = sum(committed[tp] - self.beginnings[tp] for tp in self.partitions)
        total = sum(ends[tp] - self.beginnings[tp] for tp in self.partitions)
        before, self._last_ends = self._last_ends, ends
        caught_up = before is not None and all(committed[tp] >= before[tp] for tp in self.partitions)
        return Progress(done, total, caught_up)

    async def reached(self, targets: dict[TopicPartition, int], within: float) -> None:
        """Wait until the group committed at least `targets` everywhere; raise after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            committed = await self.committed()
            if all(committed[tp] >= target for tp, target in targets.items()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the shadow did not reach the end offsets within {within:.0f}s")
            await asyncio.sleep(0.02)


class ShadowWorkers:
    """The shadow's worker processes; each dies with this process (Linux parent-death signal)."""

    def __init__(self, settings: Settings, schema: str, group: str, count: int, log_dir: Path) -> None:
        self._env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "RESULT_AGGREGATOR_READ_MODEL_SCHEMA": schema,
            "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
            "RESULT_AGGREGATOR_WORKER_METRICS_PORT": "0",
            "RESULT_AGGREGATOR_LOG_FORMAT": "json",
            # the relay publishes the live outbox (the shadow's rows go over with the swap, if at all);
            # a shadow worker killed at the swap must not be the one leading it
            "RESULT_AGGREGATOR_OUTBOX_RELAY_ENABLED": "false",
        }
        self._count, self._log_dir, self._started = count, log_dir, 0
        self.processes: list[subprocess.Popen[bytes]] = []

    def ensure_running(self) -> None:
        self.processes = [p for p in self.processes if p.poll() is None]
        while len(self.processes) < self._count:
            self._started += 1
            log = (self._log_dir / f"shadow-worker-{self._started}.log").open("ab")
            argv = [sys.executable, "-c", SHADOW_WORKER, str(os.getpid())]
            self.processes.append(subprocess.Popen(argv, env=self._env, stdout=log, stderr=log))

    def assert_alive(self) -> None:
        if dead := [p for p in self.processes if p.poll() is not None]:
            codes = ", ".join(str(p.returncode) for p in dead)
            raise RebuildFailed(f"a shadow worker exited ({codes}); see {self._log_dir}")

    def signal_stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    async def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            await asyncio.to_thread(process.wait)

    async def stop(self, grace_seconds: float = 20.0) -> None:
        self.signal_stop()
        for process in self.processes:
            try:
                await asyncio.to_thread(process.wait, grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


# A shadow worker: the worker engine, told to stop (SIGTERM) when the rebuild's process dies. Set before
# the worker's imports (seconds on a busy machine), and given up if the rebuild died before it was set.
SHADOW_WORKER = f"""
import ctypes, os, runpy, signal, sys
ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    sys.exit("the rebuild that started this shadow worker is gone")
runpy.run_module("result_aggregator_service.entrypoints.worker", run_name="__main__")
"""


async def rebuild(
    settings: Settings,
    engine: AsyncEngine,
    redis: Redis,
    workers: int,
    log_dir: Path,
    on_progress: Callable[[Progress], None],
    check_seconds: float = 1.0,
    swap_wait_seconds: float = 10.0,
) -> RebuildReport:
    async with engine.connect() as guard:  # held for the whole run: one rebuild at a time
        await swap.hold_rebuild_lock(guard)
        for name in await swap.drop_leftovers(engine):
            _log.info("rebuild_dropped_leftover", schema=name)
        epoch = await swap.live_epoch(engine) + 1
        shadow = await swap.create_shadow(engine, settings.database_url, epoch)
        group = f"{settings.consumer_group}.rebuild.{shadow}"
        offsets, shadow_workers = Offsets(settings, group), ShadowWorkers(settings, shadow, group, workers, log_dir)
        swapped = False
        try:
            await offsets.start()
            started, first = time.monotonic(), None
            shadow_workers.ensure_running()
            for attempt in range(1, SWAP_ATTEMPTS + 1):
                records, first = await _until_caught_up(offsets, shadow_workers, on_progress, check_seconds, first)
                build_seconds = time.monotonic() - started

                async def caught_up() -> None:
                    await offsets.reached(await offsets.ends(), swap_wait_seconds)
                    # Nothing of theirs may commit once the swap reads the shadow: killed at once (a
                    # graceful stop would add its idle poll to the write pause), whatever they were
                    # applying past the end offsets rolls back and the live workers apply it after the swap.
                    await shadow_workers.kill()

                try:
                    retired, timings = await swap.swap_in(
                        engine, shadow, epoch, settings.rebuild_grace_seconds, caught_up
                    )
                    swapped = True
                    break
                except (TimeoutError, swap.SwapLockTimeout) as error:
                    _log.warning("rebuild_swap_retried", attempt=attempt, error=str(error))
                    await shadow_workers.stop()
                    shadow_workers.ensure_running()
            else:
                raise RebuildFailed(f"the swap did not succeed in {SWAP_ATTEMPTS} attempts")
        finally:
            await shadow_workers.stop()
            await offsets.stop()
            if not swapped:
                await swap.drop_schema(engine, shadow)
        await _flush_cache(settings, redis, epoch)
        await swap.drop_schema(engine, shadow)  # what is left of it: its own parked and outbox copies
        since, done_then = first or (started, 0)
        return RebuildReport(
            epoch,
            records,
            build_seconds,
            records - done_then,
            started + build_seconds - since,
            timings.writes_paused_seconds,
            timings.reads_paused_seconds,
            retired,
            attempt,
        )


async def drop_retired_after_grace(engine: AsyncEngine, retired: str, grace_seconds: float) -> None:
    await asyncio.sleep(grace_seconds)
    await swap.drop_retired(engine, retired)


async def _until_caught_up(
    offsets: Offsets,
    workers: ShadowWorkers,
    on_progress: Callable[[Progress], None],
    check_seconds: float,
    first: tuple[float, int] | None,
) -> tuple[int, tuple[float, int] | None]:
    """Lag 0 on every partition at two checks in a row; returns the records consumed, and when the
    first commit was seen with how many records it had (kept across attempts)."""
    streak = 0
    while streak < 2:
        await asyncio.sleep(check_seconds)
        workers.assert_alive()
        progress = await offsets.progress()
        on_progress(progress)
        if first is None and progress.done > 0:
            first = (time.monotonic(), progress.done)
        streak = streak + 1 if progress.caught_up else 0
    return progress.done, first


async def _flush_cache(settings: Settings, redis: Redis, epoch: int, within: float = 60.0) -> None:
    """The swap committed: the cache must follow. Retried; an answer cached before it can live only its TTL."""
    cache = RedisResponseCache(redis, settings.cache_ttl_seconds, settings.cache_max_pages_per_user)
    deadline = time.monotonic() + within
    while True:
        try:
            dropped = await cache.flush()
            _log.info("rebuild_cache_flushed", epoch=epoch, dropped=dropped)
            return
        except Exception as error:
            if time.monotonic() > deadline:
                _log.error("rebuild_cache_flush_failed", epoch=epoch, error=repr(error), ttl=settings.cache_ttl_seconds)
                return
            await asyncio.sleep(0.5)
