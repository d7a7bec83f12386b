"""The API-level Redis cache: hits skip PostgreSQL, events invalidate, misses share one query, Redis down is fine."""

from __future__ import annotations

import asyncio
import time

import pytest
from dishka import AsyncContainer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from result_aggregator_service.adapters.response_cache import batch_key
from result_aggregator_service.adapters.tables import batches
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.routes import BATCH_STATUS_ROUTE
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.service_layer.ports import BatchChange, ChangeSink
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import (
    API_KEY,
    AUTH,
    BATCH_STATUS,
    USER_BATCHES,
    Client,
    StatementLog,
    ingest,
    serving,
    unused_port,
)

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


async def registered_batch(container: AsyncContainer, user_id: str = "cache-user") -> str:
    batch_id = samples.new_id("batch-")
    await ingest(container, [samples.batch_registered(batch_id, ["e1", "e2"], user_id=user_id)])
    return batch_id


async def lookups(container: AsyncContainer, result: str) -> float:
    metrics = await container.get(ServiceMetrics)
    labels = {"route": BATCH_STATUS_ROUTE, "result": result}
    return metrics.registry.get_sample_value("ras_cache_lookups_total", labels) or 0.0


async def until_counted(container: AsyncContainer, result: str, count: float, deadline_seconds: float = 10) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if await lookups(container, result) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} cache lookups with result {result!r} within {deadline_seconds} s")


async def test_a_cached_status_is_served_without_touching_postgresql(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = await registered_batch(api_services)
    first = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)
    assert first.status_code == 200 and await (await api_services.get(Redis)).exists(batch_key(batch_id))
    engine = await api_services.get(AsyncEngine)
    async with engine.begin() as connection:  # gone from PostgreSQL: only the cache can still answer
        await connection.execute(delete(batches).where(batches.c.batch_id == batch_id))
    hits_before = await lookups(api_services, "hit")

    with StatementLog(engine) as sql:
        second = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)

    assert second.status_code == 200
    assert await second.get_data() == await first.get_data()
    assert second.headers["ETag"] == first.headers["ETag"]
    assert sql.statements == []
    assert await lookups(api_services, "hit") == hits_before + 1


async def test_a_new_event_invalidates_the_cached_status(client: Client, api_services: AsyncContainer) -> None:
    batch_id = await registered_batch(api_services)
    before = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)

    await ingest(api_services, [samples.slot_assigned(batch_id, "e1", file_name="late.docx")])
    after = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)

    assert (await before.get_json())["essays"][0]["filename"] is None
    assert (await after.get_json())["essays"][0]["filename"] == "late.docx"
    assert after.headers["ETag"] != before.headers["ETag"]


async def test_a_new_batch_invalidates_every_cached_page_of_its_user(
    client: Client, api_services: AsyncContainer
) -> None:
    user_id = samples.new_id("user-")
    first = await registered_batch(api_services, user_id)
    pages = [f"{USER_BATCHES.format(user_id)}{query}" for query in ("", "?limit=1", "?status=cancelled")]
    for path in pages:
        await client.get(path, headers=AUTH)

    second = await registered_batch(api_services, user_id)
    await ingest(api_services, [samples.pipeline_completed(first, final_status="cancelled")])

    everything, newest, cancelled = [await (await client.get(p, headers=AUTH)).get_json() for p in pages]
    assert {b["batch_id"] for b in everything["batches"]} == {first, second}
    assert everything["pagination"]["total"] == 2 and newest["pagination"]["total"] == 2
    assert [b["batch_id"] for b in cancelled["batches"]] == [first]


async def test_concurrent_misses_for_one_batch_share_one_query(client: Client, api_services: AsyncContainer) -> None:
    batch_id = await registered_batch(api_services)
    engine = await api_services.get(AsyncEngine)
    misses_before = await lookups(api_services, "miss")

    with StatementLog(engine) as sql:
        async with engine.connect() as blocker:  # hold the query up until every request has missed
            await blocker.execute(text("LOCK TABLE essays IN ACCESS EXCLUSIVE MODE"))
            requests = [asyncio.create_task(client.get(BATCH_STATUS.format(batch_id), headers=AUTH)) for _ in range(20)]
            await until_counted(api_services, "miss", misses_before + 20)
            await blocker.rollback()
        responses = await asyncio.gather(*requests)

    assert [r.status_code for r in responses] == [200] * 20
    assert len({await r.get_data() for r in responses}) == 1
    assert len(sql.reading("batches")) == 1


async def test_waiters_ask_again_when_the_shared_answer_could_not_be_cached(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = await registered_batch(api_services)
    engine, cache = await api_services.get(AsyncEngine), await api_services.get(ChangeSink)
    misses_before = await lookups(api_services, "miss")

    with StatementLog(engine) as sql:
        async with engine.connect() as blocker:
            await blocker.execute(text("LOCK TABLE essays IN ACCESS EXCLUSIVE MODE"))
            requests = [asyncio.create_task(client.get(BATCH_STATUS.format(batch_id), headers=AUTH)) for _ in range(5)]
            await until_counted(api_services, "miss", misses_before + 5)
            await cache.batches_changed([BatchChange(batch_id, version=0)])  # the shared answer is now suspect
            await blocker.rollback()
        responses = await asyncio.gather(*requests)

    assert [r.status_code for r in responses] == [200] * 5
    assert len(sql.reading("batches")) == 5  # the leader's query, then one each for the four that joined it


async def test_an_unknown_batch_is_cached_as_not_found_until_it_is_registered(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    assert (await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)).status_code == 404
    with StatementLog(await api_services.get(AsyncEngine)) as sql:
        assert (await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)).status_code == 404
    assert sql.statements == []

    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"])])

    assert (await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)).status_code == 200


async def test_with_redis_unreachable_the_api_answers_from_postgresql(
    settings: Settings, api_services: AsyncContainer
) -> None:
    batch_id = await registered_batch(api_services, user_id="no-redis-user")
    no_redis = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{unused_port()}/0", "internal_api_key": SecretStr(API_KEY)}
    )

    async with serving(no_redis) as client:
        status = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)
        listing = await client.get(USER_BATCHES.format("no-redis-user"), headers=AUTH)
        health = await (await client.get("/healthz")).get_json()
        exposition = await (await client.get("/metrics")).get_data(as_text=True)

    assert status.status_code == 200 and (await status.get_json())["batch_id"] == batch_id
    assert listing.status_code == 200
    assert health["status"] == "degraded" and health["checks"]["redis"]["status"] == "error"
    samples_by_labels = {
        (s.labels["route"], s.labels["result"]): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "ras_cache_lookups_total"
    }
    assert samples_by_labels[BATCH_STATUS_ROUTE, "error"] == 1.0
