"""Versioned payloads through the real broker and the worker process: a spellcheck result at schema_version 1
and the same result at schema_version 2 show the same essay; a version the service does not know is
parked with its bytes and reason, and the record after it is applied."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common_core import topics
from result_aggregator_service.adapters.tables import parked_events
from result_aggregator_service.tests.contract import sample_envelopes as samples
from tests.conftest import publish, wait_for
from tests.test_end_to_end import claimed, publish_all, sessions

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("worker_process")]
__all__ = ["sessions"]  # the fixture, shared with the end-to-end module


def in_batch(sample: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The same event for another batch, with an id of its own."""
    return {**json.loads(json.dumps(sample).replace(old, new)), "event_id": str(uuid.uuid4())}


async def test_version_1_and_2_of_a_spellcheck_result_show_the_same_essay(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = samples.new_id("batch-v1-"), samples.new_id("batch-v2-")
    registered_at = datetime.now(UTC)  # the same times for both batches: the essays' last_updated
    v1 = samples.spellcheck_result(first, "e1", corrections=6, event_timestamp=registered_at + timedelta(seconds=1))
    v2 = samples.spellcheck_as_schema_2(in_batch(v1, first, second), language="sv")
    registrations = [samples.batch_registered(b, ["e1", "e2"], event_timestamp=registered_at) for b in (first, second)]
    await publish_all(kafka_producer, [*registrations, v1, v2])
    await wait_for(lambda: claimed(sessions, *registrations, v1, v2), what="both versions' claims")

    shown = [(await api_client.get(f"/internal/v1/batches/{b}/essays/e1")).json() for b in (first, second)]

    assert shown[0]["spellcheck_correction_count"] == 6 and shown[0]["spellcheck_status"] == "completed"
    assert {**shown[0], "batch_id": second} == shown[1]


async def test_an_unknown_schema_version_is_parked_with_its_bytes_and_the_next_record_is_applied(
    kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    batch_id = samples.new_id("batch-")
    future = samples.spellcheck_result(batch_id, "e1") | {"schema_version": 99}
    after = samples.spellcheck_result(batch_id, "e1")  # same key: same partition, after it
    await publish(kafka_producer, future)
    await publish(kafka_producer, after)
    await wait_for(lambda: claimed(sessions, after), what="the record after the unknown version")

    async with sessions() as session:
        query = select(parked_events.c.reason, parked_events.c.value, parked_events.c.error).where(
            parked_events.c.topic == topics.SPELLCHECK_RESULTS_TOPIC, parked_events.c.key == batch_id.encode()
        )
        parked = (await session.execute(query)).all()
    assert [(reason, value) for reason, value, _ in parked] == [("unsupported_version", samples.to_bytes(future))]
    assert "schema_version 99" in parked[0].error
    assert not await claimed(sessions, future)
