"""The worker's liveness probe: healthy while idle; 503 once records wait and nothing commits for the
configured stall time (here: a database it cannot use); healthy again once it commits. It also shows
the outbox relay's state, and when it was given its partitions."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from conftest import migrate
from result_aggregator_service.config import Settings
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.outbox_support import outbox_events, write_outbox
from tests.conftest import free_port, publish, spawn, wait_for
from tests.kafka_groups import position_group_at_end

pytestmark = pytest.mark.infra


async def health(port: int) -> int | None:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=2)).status_code
    except httpx.TransportError:
        return None


async def test_lag_without_a_commit_for_the_stall_time_turns_the_worker_unhealthy_until_it_commits(
    settings: Settings, kafka_producer: AIOKafkaProducer, fresh_database_url: str
) -> None:
    group = f"ras-health-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(settings.kafka_bootstrap_servers, group)
    port = free_port()
    env = {
        "DATABASE_URL": fresh_database_url,  # not migrated: every micro-batch fails and is retried
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
        "RESULT_AGGREGATOR_WORKER_STALL_SECONDS": "2",
        "RESULT_AGGREGATOR_LAG_INTERVAL_SECONDS": "0.5",
        "RESULT_AGGREGATOR_RETRY_MAX_SECONDS": "0.5",
    }
    worker = spawn("result_aggregator_service.entrypoints.worker", env, "worker-health.log")
    try:
        assert await wait_for(lambda: health(port), within=60, what="the worker's /healthz") == 200
        await asyncio.sleep(3)  # idle past the stall time: still healthy, nothing waits
        assert await health(port) == 200

        await publish(kafka_producer, samples.batch_registered(samples.new_id("batch-"), ["e1"]))

        async def unhealthy() -> bool:
            return await health(port) == 503

        await wait_for(unhealthy, within=30, what="503 from a stalled worker")
        await migrate(fresh_database_url, "upgrade", "head")

        async def healthy() -> bool:
            return await health(port) == 200

        await wait_for(healthy, within=30, what="200 once the worker commits again")
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 30)


async def test_the_worker_shows_its_outbox_relay_and_its_last_assignment(
    settings: Settings, fresh_database_url: str
) -> None:
    await migrate(fresh_database_url, "upgrade", "head")
    await write_outbox(fresh_database_url, outbox_events(5, ["batch-health"]))
    group = f"ras-health-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(settings.kafka_bootstrap_servers, group)
    port = free_port()
    env = {
        "DATABASE_URL": fresh_database_url,
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
    }
    spawned = time.time()
    worker = spawn("result_aggregator_service.entrypoints.worker", env, "worker-health-outbox.log")
    try:

        async def metrics() -> str | None:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=2)).text
            except httpx.TransportError:
                return None

        async def assigned_at() -> float | None:
            exposed = await metrics()
            if exposed is None:
                return None
            line = next(line for line in exposed.splitlines() if line.startswith("ras_last_assignment_timestamp"))
            return float(line.rsplit(" ", 1)[1]) or None  # 0 until the group has given it its partitions

        async def relay_state() -> dict[str, object] | None:
            try:
                async with httpx.AsyncClient() as client:
                    body = (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=2)).json()
            except httpx.TransportError:
                return None
            state: dict[str, object] = body["outbox_relay"]
            return state if state["leader"] and state["backlog"] == 0 else None

        state = await wait_for(relay_state, within=60, what="the relay leading with an empty backlog")
        assert state["oldest_unpublished_age_seconds"] == 0
        exposed = await metrics()
        assert exposed is not None
        assert 'ras_outbox_published_total{topic="huleedu.ras.batch.results.ready.v1"} 2.0' in exposed
        assert "ras_outbox_relay_leader 1.0" in exposed
        assigned = await wait_for(assigned_at, within=60, what="the worker's partition assignment")
        assert spawned < assigned <= time.time()
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 30)
