"""Real Kafka → worker process → PostgreSQL → API process. Every wait has a deadline; no fixed sleeps."""

from __future__ import annotations

import asyncio
import random
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from dishka import AsyncContainer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common_core import topics
from result_aggregator_service.adapters.tables import batches, essays, parked_events, processed_events
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.lifecycles import batch_lifecycle, delivered
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.scenarios import lifecycle
from result_aggregator_service.tests.unit.folding import decoded, fold
from tests.conftest import UNMAPPED_TOPIC, publish, wait_for
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("worker_process")]


@pytest.fixture
async def sessions(container: AsyncContainer) -> async_sessionmaker[AsyncSession]:
    return await container.get(async_sessionmaker[AsyncSession])


async def claimed(sessions: async_sessionmaker[AsyncSession], *events: dict[str, Any]) -> bool:
    ids = [uuid.UUID(e["event_id"]) for e in events]
    async with sessions() as session:
        query = select(func.count()).select_from(processed_events).where(processed_events.c.event_id.in_(ids))
        return (await session.execute(query)).scalar_one() == len(ids)


async def read_batch(sessions: async_sessionmaker[AsyncSession], batch_id: str) -> BatchResult:
    async with sessions() as session, SqlAlchemyUnitOfWork(session) as uow:
        return await uow.batches.get(batch_id)


async def publish_all(producer: AIOKafkaProducer, events: list[dict[str, Any]]) -> None:
    for event in events:
        await publish(producer, event)


async def test_a_registration_flows_from_kafka_to_the_api(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient
) -> None:
    batch_id, essay_ids = samples.new_id("batch-"), [samples.new_id("essay-") for _ in range(2)]
    await publish(kafka_producer, samples.batch_registered(batch_id, essay_ids, user_id="teacher-e2e"))

    async def shown() -> httpx.Response | None:
        response = await api_client.get(f"/internal/v1/batches/{batch_id}/status")
        return response if response.status_code == 200 else None

    body = (await wait_for(shown, what="the API to show the batch")).json()
    assert body["batch_id"] == batch_id
    assert body["user_id"] == "teacher-e2e"
    assert body["overall_status"] == "pending_content"
    assert body["essay_count"] == 2
    assert sorted(e["essay_id"] for e in body["essays"]) == sorted(essay_ids)


@pytest.mark.parametrize("topic", topics.CONSUMED_TOPICS)
async def test_each_topic_lands_in_the_read_model(
    topic: str, kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    batch_id = samples.new_id("batch-")
    sample = samples.sample_of(topic, batch_id)
    await publish(kafka_producer, sample)
    await wait_for(lambda: claimed(sessions, sample), what=f"the {topic} event's claim")
    assert await read_batch(sessions, batch_id) == fold([decoded(sample)], batch_id)
    async with sessions() as session:
        row = (await session.execute(select(batches).where(batches.c.batch_id == batch_id))).one()
    assert row.version == 1
    assert row.last_updated == decoded(sample).event_timestamp


async def test_a_shuffled_lifecycle_with_duplicates_equals_the_in_order_fold(
    kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rng = random.Random()
    generated = batch_lifecycle(rng, samples.new_id("user-"), spellcheck_failure_rate=0.3)
    events = list(generated.events)
    await publish_all(kafka_producer, delivered(events, rng, out_of_order=1.0, duplicated=1.0))
    await wait_for(lambda: claimed(sessions, *events), what="every lifecycle event's claim")
    assert await read_batch(sessions, generated.batch_id) == fold([decoded(e) for e in events], generated.batch_id)


async def test_results_published_before_registration_appear_once_it_registers(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    batch_id, essay_id = samples.new_id("batch-"), samples.new_id("essay-")
    early = samples.spellcheck_result(batch_id, essay_id, corrections=7)
    await publish(kafka_producer, early)
    await wait_for(lambda: claimed(sessions, early), what="the early result's claim")
    assert (await api_client.get(f"/internal/v1/batches/{batch_id}/status")).status_code == 404

    await publish(kafka_producer, samples.batch_registered(batch_id, [essay_id]))

    async def registered() -> dict[str, Any] | None:
        response = await api_client.get(f"/internal/v1/batches/{batch_id}/status")
        return response.json() if response.status_code == 200 else None

    body = await wait_for(registered, what="the registered batch")
    assert body["essays"][0]["spellcheck_correction_count"] == 7


async def test_an_event_published_three_times_is_applied_once(
    kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    batch_id = samples.new_id("batch-")
    registration = samples.batch_registered(batch_id, ["e1", "e2"])
    marker = samples.slot_assigned(batch_id, "e1")
    await publish_all(kafka_producer, [registration, registration, registration, marker])
    await wait_for(lambda: claimed(sessions, registration, marker), what="both claims")
    async with sessions() as session:
        version = (await session.execute(select(batches.c.version).where(batches.c.batch_id == batch_id))).scalar()
        essay_count = (
            await session.execute(select(func.count()).select_from(essays).where(essays.c.batch_id == batch_id))
        ).scalar()
    assert essay_count == 2
    assert version is not None and version <= 2  # one change for the registration, one for the slot


async def test_bad_records_are_parked_with_their_bytes_and_consumption_goes_on(
    kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    batch_id = samples.new_id("batch-")
    schema_invalid = samples.batch_registered(batch_id, ["e1"])
    schema_invalid["data"]["expected_essay_count"] = "many"
    bad_records = {
        ("undecodable", topics.SPELLCHECK_RESULTS_TOPIC): b"{not json at all " + batch_id.encode(),
        ("schema_invalid", topics.BATCH_ESSAYS_REGISTERED_TOPIC): samples.to_bytes(schema_invalid),
        ("unknown_topic", UNMAPPED_TOPIC): samples.to_bytes(samples.slot_assigned(batch_id, "e1")),
    }
    for (_, topic), value in bad_records.items():
        await kafka_producer.send_and_wait(topic, value, key=batch_id.encode())
    good = samples.batch_registered(batch_id, ["e1"])
    await publish(kafka_producer, good)
    await wait_for(lambda: claimed(sessions, good), what="the good event after the bad ones")

    async def parked() -> dict[bytes, tuple[str, str]] | None:
        async with sessions() as session:
            query = select(parked_events.c.value, parked_events.c.reason, parked_events.c.topic).where(
                parked_events.c.value.in_(list(bad_records.values()))
            )
            rows = {value: (reason, topic) for value, reason, topic in await session.execute(query)}
        return rows if len(rows) == len(bad_records) else None

    rows = await wait_for(parked, what="three parked records")
    assert {rows[value] for value in bad_records.values()} == set(bad_records)


async def test_a_postgres_outage_mid_stream_loses_and_skips_nothing(
    kafka_producer: AIOKafkaProducer,
    sessions: async_sessionmaker[AsyncSession],
    postgres_proxy: TcpProxy,
    worker_process: subprocess.Popen[bytes],
) -> None:
    batch_id = samples.new_id("batch-")
    events = lifecycle(batch_id, [samples.new_id("essay-") for _ in range(4)])
    half = len(events) // 2
    await publish_all(kafka_producer, events[:half])
    await wait_for(lambda: claimed(sessions, *events[:half]), what="the first half")
    postgres_proxy.cut()
    try:
        await publish_all(kafka_producer, events[half:])
        await asyncio.sleep(3)  # the outage itself: the worker must retry, not skip
        assert worker_process.poll() is None, "the worker died during the outage"
    finally:
        postgres_proxy.restore()
    await wait_for(lambda: claimed(sessions, *events), within=60, what="every event after the outage")
    assert await read_batch(sessions, batch_id) == fold([decoded(e) for e in events], batch_id)


async def test_a_read_that_follows_the_commit_never_returns_the_older_state(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user_id, batch_id, essay_id = samples.new_id("user-"), samples.new_id("batch-"), samples.new_id("essay-")
    registration = samples.batch_registered(batch_id, [essay_id], user_id=user_id)
    await publish(kafka_producer, registration)
    await wait_for(lambda: claimed(sessions, registration), what="the registration's claim")
    status_url, list_url = f"/internal/v1/batches/{batch_id}/status", f"/internal/v1/batches/user/{user_id}"
    for _ in range(2):  # the second read of each is a cache hit
        cached_status, cached_list = await api_client.get(status_url), await api_client.get(list_url)
    assert cached_status.json()["essays"][0]["filename"] is None
    assert [b["batch_id"] for b in cached_list.json()["batches"]] == [batch_id]

    slot = samples.slot_assigned(batch_id, essay_id, file_name="fresh.docx")
    second_batch = samples.batch_registered(samples.new_id("batch-"), ["x"], user_id=user_id)
    await publish_all(kafka_producer, [slot, second_batch])
    await wait_for(lambda: claimed(sessions, slot, second_batch), what="the new events' claims")

    fresh_status, fresh_list = await api_client.get(status_url), await api_client.get(list_url)
    assert fresh_status.json()["essays"][0]["filename"] == "fresh.docx"
    assert fresh_status.headers["ETag"] != cached_status.headers["ETag"]
    assert fresh_list.json()["pagination"]["total"] == 2


async def test_a_redis_outage_pauses_consumption_and_loses_nothing(
    kafka_producer: AIOKafkaProducer,
    api_client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    redis_proxy: TcpProxy,
    worker_process: subprocess.Popen[bytes],
) -> None:
    batch_id, essay_id = samples.new_id("batch-"), samples.new_id("essay-")
    registration = samples.batch_registered(batch_id, [essay_id])
    await publish(kafka_producer, registration)
    await wait_for(lambda: claimed(sessions, registration), what="the registration's claim")
    status_url = f"/internal/v1/batches/{batch_id}/status"
    await api_client.get(status_url)  # cached now: the API reaches Redis directly, the worker does not

    slot = samples.slot_assigned(batch_id, essay_id, file_name="after-the-outage.docx")
    redis_proxy.cut()
    try:
        await publish(kafka_producer, slot)
        await asyncio.sleep(3)  # the outage: the worker cannot invalidate, so it must not commit either
        assert worker_process.poll() is None, "the worker died during the outage"
        assert not await claimed(sessions, slot), "committed a change whose cached responses it could not drop"
    finally:
        redis_proxy.restore()
    await wait_for(lambda: claimed(sessions, slot), within=60, what="the event after the outage")
    body = (await api_client.get(status_url)).json()
    assert body["essays"][0]["filename"] == "after-the-outage.docx"


async def test_a_record_with_a_header_without_value_is_applied(
    kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    registration = samples.batch_registered(samples.new_id("batch-"), ["e1"])
    headers = [("event_id", registration["event_id"].encode()), ("trace_id", None)]
    await kafka_producer.send_and_wait(registration["event_type"], samples.to_bytes(registration), headers=headers)
    await wait_for(lambda: claimed(sessions, registration), what="the event with a null header")
