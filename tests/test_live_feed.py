"""Read-your-writes and the live feeds end to end: real Kafka → worker process → Redis notices → API process."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from result_aggregator_service.tests.contract import sample_envelopes as samples
from tests.conftest import publish

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("worker_process")]


def status_path(batch_id: str) -> str:
    return f"/internal/v1/batches/{batch_id}/status"


async def read_after(
    api_client: httpx.AsyncClient, batch_id: str, event: dict[str, Any], **query: str
) -> httpx.Response:
    params = {"wait_for_event": event["event_id"], **query}
    return await api_client.get(status_path(batch_id), params=params, timeout=15)


async def registered(producer: AIOKafkaProducer, api_client: httpx.AsyncClient, essays: int) -> tuple[str, list[str]]:
    batch_id, essay_ids = samples.new_id("ryw-"), [samples.new_id("essay-") for _ in range(essays)]
    registration = samples.batch_registered(batch_id, essay_ids, user_id=f"teacher-{batch_id}")
    await publish(producer, registration)
    assert (await read_after(api_client, batch_id, registration, wait_seconds="10")).status_code == 200
    return batch_id, essay_ids


async def test_a_read_with_the_event_id_returns_the_state_that_includes_it_100_times_of_100(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient
) -> None:
    batch_id, essay_ids = await registered(kafka_producer, api_client, essays=100)
    stale: list[tuple[int, str | None]] = []
    for i, essay_id in enumerate(essay_ids):
        event = samples.slot_assigned(batch_id, essay_id, file_name=f"try-{i}.docx")
        await publish(kafka_producer, event)
        response = await read_after(api_client, batch_id, event)  # one read, right after the publish
        shown = {e["essay_id"]: e["filename"] for e in response.json()["essays"]}
        if response.headers.get("X-Event-Outcome") != "applied" or shown[essay_id] != f"try-{i}.docx":
            stale.append((i, response.headers.get("X-Event-Outcome")))
    assert stale == []


async def test_a_never_published_event_times_out_within_the_bound_with_the_current_state(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient
) -> None:
    batch_id, _ = await registered(kafka_producer, api_client, essays=1)
    started = time.monotonic()
    response = await read_after(api_client, batch_id, {"event_id": str(uuid.uuid4())}, wait_seconds="1")
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.headers["X-Event-Outcome"] == "timeout"
    assert response.json()["batch_id"] == batch_id
    assert 1.0 <= elapsed < 2.0, elapsed


async def test_a_parked_event_ends_the_wait_as_parked(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient
) -> None:
    batch_id, _ = await registered(kafka_producer, api_client, essays=1)
    rejected = samples.batch_registered(batch_id, ["e1"])
    rejected["data"]["expected_essay_count"] = -1  # the rules reject it: parked
    await publish(kafka_producer, rejected)
    started = time.monotonic()
    response = await read_after(api_client, batch_id, rejected, wait_seconds="10")
    assert response.headers["X-Event-Outcome"] == "parked" and time.monotonic() - started < 5
    again = await read_after(api_client, batch_id, rejected)  # now from the worker's records
    assert again.headers["X-Event-Outcome"] == "parked"


class Feed:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next_event(self, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line == "" and "data" in fields:
                    return {"id": fields["id"], "data": json.loads(fields["data"])}
                if line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
        raise AssertionError("the stream ended")


async def test_an_sse_client_sees_each_change_and_resumes_with_last_event_id(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient
) -> None:
    batch_id, essay_ids = await registered(kafka_producer, api_client, essays=3)
    path = f"/internal/v1/batches/{batch_id}/events"
    async with api_client.stream("GET", path, timeout=httpx.Timeout(10, read=30)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        feed = Feed(response.aiter_lines())
        last = await feed.next_event()  # the current state at once
        for essay_id in essay_ids:
            await publish(kafka_producer, samples.slot_assigned(batch_id, essay_id))
            event = await feed.next_event()
            assert int(event["id"]) > int(last["id"]) and event["data"]["batch_id"] == batch_id
            last = event
    # a change while away, then a resume: the newer state comes at once
    event = samples.slot_assigned(batch_id, essay_ids[0], file_name="while-away.docx")
    await publish(kafka_producer, event)
    await read_after(api_client, batch_id, event)
    resumed = {"Last-Event-ID": last["id"]}
    async with api_client.stream("GET", path + "?include=status", headers=resumed, timeout=30) as response:
        event = await Feed(response.aiter_lines()).next_event()
        assert int(event["id"]) > int(last["id"])
        assert "while-away.docx" in {e["filename"] for e in event["data"]["status"]["essays"]}


async def test_a_user_feed_sees_a_change_of_any_of_the_users_batches(
    kafka_producer: AIOKafkaProducer, api_client: httpx.AsyncClient
) -> None:
    batch_id, essay_ids = await registered(kafka_producer, api_client, essays=1)
    path = f"/internal/v1/batches/user/teacher-{batch_id}/events"
    async with api_client.stream("GET", path, timeout=httpx.Timeout(10, read=30)) as response:
        feed = Feed(response.aiter_lines())
        first = await feed.next_event()
        assert first["id"].startswith(f"{batch_id}:")
        await publish(kafka_producer, samples.slot_assigned(batch_id, essay_ids[0]))
        changed = await feed.next_event()
        assert changed["data"]["version"] > first["data"]["version"]
