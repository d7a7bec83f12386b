"""The worker's liveness probe: healthy while idle; 503 once records wait and nothing commits for the
configured stall time (here: a database it cannot use); healthy again once it commits."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from conftest import migrate
from result_aggregator_service.config import Settings
from result_aggregator_service.tests.contract import sample_envelopes as samples
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
