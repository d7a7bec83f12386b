"""A worker's life: SIGTERM mid-stream (its successor loses and repeats nothing), and a start before the
database is migrated (it waits, then applies; nothing is parked or skipped)."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from dishka import AsyncContainer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conftest import migrate
from result_aggregator_service.adapters.tables import processed_events
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.config import Settings
from result_aggregator_service.lifecycles import batch_lifecycle
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.contract.sample_envelopes import to_bytes
from result_aggregator_service.tests.unit.folding import decoded, fold
from tests.conftest import LOG_DIR, free_port, publish, spawn, wait_for
from tests.kafka_groups import position_group_at_end

pytestmark = pytest.mark.infra


async def outcomes(port: int) -> dict[str, float]:
    """The worker's `ras_events_processed_total` by outcome (empty while it is not up)."""
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
    except httpx.TransportError:
        return {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ras_events_processed_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


async def test_sigterm_mid_stream_then_restart_applies_every_event_once(
    settings: Settings, kafka_producer: AIOKafkaProducer, container: AsyncContainer
) -> None:
    group = f"ras-shutdown-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(settings.kafka_bootstrap_servers, group)
    port = free_port()
    env = {
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
        "RESULT_AGGREGATOR_MICRO_BATCH_MAX_EVENTS": "10",  # many commits, so SIGTERM lands mid-stream
        "RESULT_AGGREGATOR_LOG_FORMAT": "console",
    }
    rng = random.Random()
    lifecycles = [batch_lifecycle(rng, "shutdown-teacher", essay_count=3) for _ in range(400)]
    batches = {lifecycle.batch_id: list(lifecycle.events) for lifecycle in lifecycles}
    events = [event for batch_events in batches.values() for event in batch_events]

    first = spawn("result_aggregator_service.entrypoints.worker", env, "worker-sigterm-1.log")
    try:
        await wait_for(lambda: _metrics_up(port), within=60, what="the first worker's metrics")
        sends = [
            await kafka_producer.send(e["event_type"], to_bytes(e), key=e["data"].get("batch_id", "").encode())
            for e in events
        ]
        await asyncio.gather(*sends)
        await wait_for(lambda: _at_least(port, 200), within=120, what="the first worker to be mid-stream")
        first.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, 30) == 0, f"unclean exit; see {LOG_DIR / 'worker-sigterm-1.log'}"
    finally:
        if first.poll() is None:
            first.kill()
    sessions = await container.get(async_sessionmaker[AsyncSession])
    assert await _claims(sessions, events) < len(events), "the stream ended before SIGTERM: nothing was tested"

    second = spawn("result_aggregator_service.entrypoints.worker", env, "worker-sigterm-2.log")
    try:
        await wait_for(lambda: _all_claimed(sessions, events), within=180, what="every event after the restart")
    finally:
        second.terminate()
        await asyncio.to_thread(second.wait, 30)
    async with sessions() as session, SqlAlchemyUnitOfWork(session) as uow:
        for batch_id, batch_events in batches.items():
            assert await uow.batches.get(batch_id) == fold([decoded(e) for e in batch_events], batch_id)


async def _metrics_up(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).status_code == 200
    except httpx.TransportError:
        return False


async def _at_least(port: int, count: int) -> bool:
    counts = await outcomes(port)
    return sum(counts.values()) - counts.get("retryable", 0) >= count


async def _applied(port: int) -> bool:
    return (await outcomes(port)).get("success", 0) > 0


async def _claims(sessions: async_sessionmaker[AsyncSession], events: list[dict[str, Any]]) -> int:
    ids = [uuid.UUID(e["event_id"]) for e in events]
    async with sessions() as session:
        query = select(func.count()).select_from(processed_events).where(processed_events.c.event_id.in_(ids))
        return int((await session.execute(query)).scalar_one())


async def _all_claimed(sessions: async_sessionmaker[AsyncSession], events: list[dict[str, Any]]) -> bool:
    return await _claims(sessions, events) == len(events)


async def test_a_worker_started_before_the_migrations_waits_for_them_and_parks_nothing(
    settings: Settings, kafka_producer: AIOKafkaProducer, fresh_database_url: str
) -> None:
    group = f"ras-unmigrated-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(settings.kafka_bootstrap_servers, group)
    port = free_port()
    env = {
        "DATABASE_URL": fresh_database_url,
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
        "RESULT_AGGREGATOR_RETRY_MAX_SECONDS": "0.5",
        "RESULT_AGGREGATOR_LOG_FORMAT": "console",
    }
    registration = samples.batch_registered(samples.new_id("batch-"), ["e1"])
    worker = spawn("result_aggregator_service.entrypoints.worker", env, "worker-unmigrated.log")
    try:
        await wait_for(lambda: _metrics_up(port), within=60, what="the worker's metrics")
        await publish(kafka_producer, registration)
        await wait_for(lambda: _retried(port), within=60, what="the worker to retry against the bare database")
        assert worker.poll() is None
        await migrate(fresh_database_url, "upgrade", "head")
        await wait_for(lambda: _applied(port), within=60, what="the event applied after the migration")
        assert {"parked", "internal"}.isdisjoint(await outcomes(port))
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 30)


async def _retried(port: int) -> bool:
    return (await outcomes(port)).get("retryable", 0) > 0
