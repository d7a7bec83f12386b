"""The outbox relay under faults: a worker killed (-9) between the broker's acknowledgement and the mark,
the broker down for 30 s, the database restarted, each while publishing. Nothing is lost, every key's
events first appear in their written order, and a re-publish carries the same event ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from conftest import migrate
from local_stack.cli import restart
from result_aggregator_service.adapters.outbox_relay import APPLICATION_NAME
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.outbox_relay import OutboxRelay
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.tests.outbox_support import (
    OutboxEvent,
    assert_published_as_written,
    copies,
    dsn,
    outbox_events,
    produced_ends,
    produced_since,
    unpublished_count,
    wait_until_published,
    write_outbox,
)
from tests.conftest import wait_for
from tests.faults.services import WorkerProcess, worker_env
from tests.kafka_groups import position_group_at_end

pytestmark = pytest.mark.infra
KEYS = [f"batch-{n}" for n in range(8)]


@pytest.fixture
async def outbox_url(fresh_databases: Callable[[], Awaitable[str]]) -> str:
    url = await fresh_databases()
    await migrate(url, "upgrade", "head")
    return url


@pytest.fixture
async def relay_metrics(settings: Settings, outbox_url: str) -> AsyncIterator[ServiceMetrics]:
    """A relay in this process on the test's database, small batches so publishing spans the fault."""
    metrics = ServiceMetrics()
    relay_settings = settings.model_copy(
        update={"database_url": outbox_url, "outbox_relay_batch_size": 20, "outbox_relay_poll_seconds": 0.2}
    )
    task = asyncio.create_task(OutboxRelay(relay_settings, metrics).run())
    yield metrics
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _relay_backends(url: str, waiting_on_a_lock: bool = False) -> list[int]:
    connection = await asyncpg.connect(dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()"
            " AND (NOT $2 OR wait_event_type = 'Lock')",
            APPLICATION_NAME,
            waiting_on_a_lock,
        )
        return [row["pid"] for row in rows]
    finally:
        await connection.close()


async def test_a_worker_killed_between_publish_and_mark_publishes_the_same_rows_again_and_nothing_else(
    settings: Settings, outbox_url: str
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    events = outbox_events(50, KEYS)
    await write_outbox(outbox_url, events)
    start = await produced_ends(bootstrap)
    group = f"ras-outbox-kill-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(bootstrap, group)
    env = {
        **worker_env(outbox_url, settings.redis_url, group),
        "RESULT_AGGREGATOR_OUTBOX_RELAY_POLL_SECONDS": "0.5",
        "RESULT_AGGREGATOR_DATABASE_LOCK_TIMEOUT_SECONDS": "300",  # the mark waits on our row locks, not fails
    }
    worker = WorkerProcess(f"outbox-kill-{group[-8:]}", env)
    holder = await asyncpg.connect(dsn(outbox_url))
    try:
        locks = holder.transaction()
        await locks.start()
        await holder.execute("SELECT id FROM outbox FOR UPDATE")  # reads go on; the relay's mark must wait
        worker.start()

        async def all_published_once() -> bool:
            worker.assert_alive()
            return len(copies(await produced_since(bootstrap, start))) == len(events)

        await wait_for(all_published_once, within=60, what="the worker's relay to publish every row")
        await wait_for(lambda: _relay_backends(outbox_url, waiting_on_a_lock=True), 10, "the mark to wait")
        worker.kill()
        # the killed worker's mark still waits in its server process; end it as the server would on
        # noticing the lost client, before our locks go (else it could still mark after the kill)
        orphans = await _relay_backends(outbox_url)
        await holder.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", orphans)
        await wait_for(lambda: _no(_relay_backends(outbox_url)), 10, "the orphaned session to end")
        await locks.rollback()
        assert await unpublished_count(outbox_url) == len(events), "the killed worker marked rows"

        worker.start()
        await wait_until_published(outbox_url, within=60, what="the restarted worker to publish and mark")
        records = await produced_since(bootstrap, start)
    finally:
        await holder.close()
        worker.stop()

    assert_published_as_written(records, events)
    assert copies(records) == {e.event_id: 2 for e in events}, "each row again once, with its event id"


async def _no(backends: Awaitable[list[int]]) -> bool:
    return not await backends


async def _write_steadily(url: str, written: list[OutboxEvent], stop: asyncio.Event, peak: list[int]) -> None:
    """50 rows every 0.2 s until stopped; `written` holds what committed, `peak` the largest backlog seen."""
    while not stop.is_set():
        events = outbox_events(50, KEYS)
        await write_outbox(url, events)
        written += events
        peak[0] = max(peak[0], await unpublished_count(url))
        await asyncio.sleep(0.2)


async def test_a_broker_down_for_30_seconds_while_publishing_loses_nothing(
    settings: Settings, outbox_url: str, relay_metrics: ServiceMetrics
) -> None:
    start = await produced_ends(settings.kafka_bootstrap_servers)
    written: list[OutboxEvent] = []
    stop, peak = asyncio.Event(), [0]
    writer = asyncio.create_task(_write_steadily(outbox_url, written, stop, peak))
    try:
        await wait_for(lambda: _published_at_least(relay_metrics, 500), 30, "publishing to be under way")
        await asyncio.to_thread(restart, "kafka", 30.0)
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await writer
    await wait_until_published(outbox_url, within=120, what="the backlog after the broker's return")

    records = await produced_since(settings.kafka_bootstrap_servers, start)
    assert_published_as_written(records, written)
    # the outage held publishing up (whether the producer's own retries bridged it or the relay's did)
    assert peak[0] >= 1000, f"the backlog never grew during the outage (peak {peak[0]})"


async def test_a_database_restart_while_publishing_loses_nothing(
    settings: Settings, outbox_url: str, relay_metrics: ServiceMetrics
) -> None:
    start = await produced_ends(settings.kafka_bootstrap_servers)
    events = outbox_events(6000, KEYS)
    await write_outbox(outbox_url, events)
    await wait_for(lambda: _published_at_least(relay_metrics, 300), 30, "publishing to be under way")
    left = await unpublished_count(outbox_url)
    await asyncio.to_thread(restart, "postgres", 3.0)
    await wait_until_published(outbox_url, within=120, what="the backlog after the database's return")

    records = await produced_since(settings.kafka_bootstrap_servers, start)
    assert_published_as_written(records, events)
    assert left > 1000, f"publishing was nearly done before the restart ({left} left)"
    assert _errors(relay_metrics, "database") >= 1, "the relay never noticed the restart"


async def _published_at_least(metrics: ServiceMetrics, count: int) -> bool:
    samples = (s for m in metrics.registry.collect() for s in m.samples)
    return sum(s.value for s in samples if s.name == "ras_outbox_published_total") >= count


def _errors(metrics: ServiceMetrics, dependency: str) -> float:
    return metrics.registry.get_sample_value("ras_outbox_publish_errors_total", {"dependency": dependency}) or 0.0
