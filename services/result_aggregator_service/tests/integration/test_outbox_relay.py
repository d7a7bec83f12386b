"""The outbox relay on the real broker and PostgreSQL: order, exact bytes, marks, NOTIFY wake-ups, a lost
listener session, and one publisher among several relays."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from conftest import migrate
from result_aggregator_service.adapters.outbox_relay import APPLICATION_NAME
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.outbox_relay import OutboxRelay
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.tests.outbox_support import (
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

pytestmark = pytest.mark.infra
RelayStarter = Callable[..., tuple[ServiceMetrics, "asyncio.Task[None]"]]


@pytest.fixture
async def relay_settings(settings: Settings, fresh_databases: Callable[[], Awaitable[str]]) -> Settings:
    """The stack's settings on a new, migrated database of the test's own (its outbox empty)."""
    url = await fresh_databases()
    await migrate(url, "upgrade", "head")
    return settings.model_copy(update={"database_url": url, "outbox_relay_poll_seconds": 0.2})


@pytest.fixture
async def start_relay() -> AsyncIterator[RelayStarter]:
    """Relays as tasks of this process, each with its own metrics; cancelled at the end."""
    tasks: list[asyncio.Task[None]] = []

    def start(settings: Settings) -> tuple[ServiceMetrics, asyncio.Task[None]]:
        metrics = ServiceMetrics()
        tasks.append(asyncio.create_task(OutboxRelay(settings, metrics).run()))
        return metrics, tasks[-1]

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _value(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _published(metrics: ServiceMetrics) -> float:
    samples = (s for m in metrics.registry.collect() for s in m.samples)
    return sum(s.value for s in samples if s.name == "ras_outbox_published_total")


async def _until(probe: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not probe():
        assert time.monotonic() < deadline, f"timed out after {within:.0f}s waiting for {what}"
        await asyncio.sleep(0.02)


async def test_the_relay_publishes_each_keys_events_in_id_order_with_their_bytes_and_marks_them(
    relay_settings: Settings, start_relay: RelayStarter
) -> None:
    events = outbox_events(60, keys=["batch-a", "batch-b", "batch-c", "teacher-1"])
    await write_outbox(relay_settings.database_url, events)
    start = await produced_ends(relay_settings.kafka_bootstrap_servers)

    metrics, _ = start_relay(relay_settings.model_copy(update={"outbox_relay_batch_size": 7}))
    await wait_until_published(relay_settings.database_url, within=30)

    records = await produced_since(relay_settings.kafka_bootstrap_servers, start)
    assert_published_as_written(records, events)
    assert set(copies(records).values()) == {1}, "without a fault every event goes out once"
    assert _published(metrics) == 60
    await _until(lambda: _value(metrics, "ras_outbox_backlog_events") == 0, 5, "the backlog gauge at 0")
    assert _value(metrics, "ras_outbox_relay_leader") == 1


async def test_a_notify_wakes_the_relay_long_before_its_poll_and_a_lost_listener_session_is_replaced(
    relay_settings: Settings, start_relay: RelayStarter
) -> None:
    relay_settings = relay_settings.model_copy(update={"outbox_relay_poll_seconds": 60.0})
    metrics, _ = start_relay(relay_settings)
    await _until(lambda: _value(metrics, "ras_outbox_relay_leader") == 1, 10, "the relay to lead")
    await asyncio.sleep(0.3)  # idle, waiting on its notices

    started = time.monotonic()
    await write_outbox(relay_settings.database_url, outbox_events(1, keys=["batch-n"]))
    await wait_until_published(relay_settings.database_url, within=5, what="the notified row published")
    notified_seconds = time.monotonic() - started

    await write_outbox(relay_settings.database_url, outbox_events(1, keys=["batch-n"]), notify=False)
    await asyncio.sleep(1.5)
    assert await unpublished_count(relay_settings.database_url) == 1, "a row nobody announced waits for the poll"

    connection = await asyncpg.connect(dsn(relay_settings.database_url))
    try:  # the relay's session ends under it: it reconnects, leads again and listens again
        ended = await connection.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
    finally:
        await connection.close()
    assert ended == 1
    await wait_until_published(relay_settings.database_url, within=10, what="the waiting row after the reconnect")
    await _until(lambda: _value(metrics, "ras_outbox_relay_leader") == 1, 10, "the relay to lead again")
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await write_outbox(relay_settings.database_url, outbox_events(1, keys=["batch-n"]))
    await wait_until_published(relay_settings.database_url, within=5, what="a notified row after the reconnect")
    renotified_seconds = time.monotonic() - started

    assert notified_seconds < 2.0 and renotified_seconds < 2.0, (notified_seconds, renotified_seconds)
    assert _value(metrics, "ras_outbox_publish_errors_total", dependency="database") >= 1


async def test_of_two_relays_only_one_publishes_and_the_other_takes_over_when_it_stops(
    relay_settings: Settings, start_relay: RelayStarter
) -> None:
    start = await produced_ends(relay_settings.kafka_bootstrap_servers)
    relays = [start_relay(relay_settings) for _ in range(2)]
    before = outbox_events(40, keys=["batch-x", "batch-y"])
    await write_outbox(relay_settings.database_url, before)
    await wait_until_published(relay_settings.database_url, within=30)

    (leading, leader_task), (standby, _) = sorted(relays, key=lambda r: -_value(r[0], "ras_outbox_relay_leader"))
    assert (_value(leading, "ras_outbox_relay_leader"), _value(standby, "ras_outbox_relay_leader")) == (1, 0)
    assert (_published(leading), _published(standby)) == (40, 0)

    leader_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await leader_task
    after = outbox_events(40, keys=["batch-x", "batch-y"])
    await write_outbox(relay_settings.database_url, after)
    await wait_until_published(relay_settings.database_url, within=15, what="the standby to take over")

    assert _value(standby, "ras_outbox_relay_leader") == 1
    assert _published(standby) == 40
    records = await produced_since(relay_settings.kafka_bootstrap_servers, start)
    assert_published_as_written(records, before + after)
    assert set(copies(records).values()) == {1}
