"""Read-your-writes and the live feeds against the in-memory read side and change feed.

The in-memory cache announces what it is told as the worker's Redis cache does (`batches_changed` with
the changes and the settled events), so these tests drive the routes the way a commit does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from pydantic import SecretStr
from quart.testing.connections import TestHTTPConnection as Connection
from quart.typing import TestClientProtocol as Client

from common_core.enums import BatchStatus
from result_aggregator_service.adapters.in_memory_reads import InMemoryReadModel, InMemoryResponseCache
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import api_container, create_app
from result_aggregator_service.live_changes import RESYNC
from result_aggregator_service.service_layer.ports import BatchChange, SettledEvents
from result_aggregator_service.tests.unit.read_side import API_KEY, AUTH, InMemoryReadSide, a_batch

STATUS = "/internal/v1/batches/{}/status"
BATCH_FEED = "/internal/v1/batches/{}/events"
USER_FEED = "/internal/v1/batches/user/{}/events"


@dataclass
class Live:
    client: Client
    cache: InMemoryResponseCache
    model: InMemoryReadModel

    def put(self, batch_id: str, version: int, user_id: str = "teacher-1") -> None:
        self.model.put(a_batch(batch_id, user_id=user_id), version, BatchStatus.PROCESSING_PIPELINES)

    async def commit(self, batch_id: str, version: int, applied: tuple[uuid.UUID, ...] = (), **settled: Any) -> None:
        """What a worker's micro-batch does: write the read model, then invalidate and announce."""
        self.put(batch_id, version)
        change = BatchChange(batch_id, version, frozenset({"teacher-1"}))
        await self.cache.batches_changing([change])
        await self.cache.batches_changed([change], SettledEvents(applied, **settled))


@contextlib.asynccontextmanager
async def live_api(**overrides: Any) -> AsyncIterator[Live]:
    settings = Settings(
        internal_api_key=SecretStr(API_KEY), database_url="postgresql+asyncpg://nowhere/none", **overrides
    )
    cache, model = InMemoryResponseCache(), InMemoryReadModel()
    container = api_container(settings, InMemoryReadSide(cache, model))
    async with create_app(settings, container).test_app() as test_app:
        yield Live(test_app.test_client(), cache, model)
    await container.close()


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    async with live_api(live_feed_heartbeat_seconds=30.0) as api:
        yield api


class Stream:
    """An open SSE response: its events one at a time."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._buffer = b""

    async def next_block(self, within: float = 2.0) -> bytes:
        while b"\n\n" not in self._buffer:
            self._buffer += await asyncio.wait_for(self.connection.receive(), within)
        block, _, self._buffer = self._buffer.partition(b"\n\n")
        return block

    async def next_event(self, within: float = 2.0) -> dict[str, Any]:
        while (block := await self.next_block(within)).startswith(b":"):
            pass  # heartbeats
        fields = dict(line.split(": ", 1) for line in block.decode().splitlines())
        return {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}

    async def nothing_within(self, seconds: float) -> bool:
        try:
            await self.next_event(seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def stream(live: Live, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[Stream]:
    connection = cast(Connection, live.client.request(path, headers={**AUTH, **(headers or {})}))
    async with connection:
        await connection.send_complete()
        try:
            yield Stream(connection)
        finally:
            await connection.disconnect()


# read-your-writes


async def test_a_read_waiting_for_an_event_answers_once_its_commit_is_announced(live: Live) -> None:
    live.put("b1", 1)
    event_id = uuid.uuid4()
    reading = asyncio.create_task(live.client.get(STATUS.format("b1") + f"?wait_for_event={event_id}", headers=AUTH))
    await asyncio.sleep(0.05)
    assert not reading.done()  # nothing announced yet: it waits
    await live.commit("b1", 2, applied=(uuid.uuid4(), event_id))
    response = await asyncio.wait_for(reading, 1)
    assert response.status_code == 200 and response.headers["X-Event-Outcome"] == "applied"
    assert response.headers["ETag"] == 'W/"b1-2"'  # the state that includes the event


async def test_an_event_applied_before_the_read_answers_at_once_from_the_workers_records(live: Live) -> None:
    live.put("b1", 4)
    event_id = uuid.uuid4()
    live.model.settled[event_id] = "applied"
    started = time.monotonic()
    response = await live.client.get(STATUS.format("b1"), headers={**AUTH, "X-Wait-For-Event": str(event_id)})
    assert response.headers["X-Event-Outcome"] == "applied" and time.monotonic() - started < 0.5


async def test_a_parked_event_ends_the_wait_and_says_so(live: Live) -> None:
    live.put("b1", 1)
    event_id = uuid.uuid4()
    reading = asyncio.create_task(live.client.get(STATUS.format("b1") + f"?wait_for_event={event_id}", headers=AUTH))
    await asyncio.sleep(0.05)
    await live.cache.batches_changed([], SettledEvents(parked=[event_id]))
    assert (await asyncio.wait_for(reading, 1)).headers["X-Event-Outcome"] == "parked"
    live.model.settled[parked := uuid.uuid4()] = "parked"
    again = await live.client.get(STATUS.format("b1") + f"?wait_for_event={parked}", headers=AUTH)
    assert again.headers["X-Event-Outcome"] == "parked"


async def test_an_event_never_published_times_out_within_the_bound_with_the_current_state(live: Live) -> None:
    live.put("b1", 3)
    started = time.monotonic()
    path = STATUS.format("b1") + f"?wait_for_event={uuid.uuid4()}&wait_seconds=0.3"
    response = await live.client.get(path, headers=AUTH)
    assert 0.3 <= time.monotonic() - started < 0.8
    assert response.status_code == 200 and response.headers["X-Event-Outcome"] == "timeout"
    assert response.headers["ETag"] == 'W/"b1-3"'


async def test_the_default_bound_is_the_configured_one_and_a_longer_one_is_cut_to_the_maximum() -> None:
    async with live_api(event_wait_default_seconds=0.2, event_wait_max_seconds=0.3) as live:
        live.put("b1", 1)
        for query, bound in (("", 0.2), ("&wait_seconds=60", 0.3)):
            started = time.monotonic()
            path = STATUS.format("b1") + f"?wait_for_event={uuid.uuid4()}{query}"
            response = await live.client.get(path, headers=AUTH)
            assert response.headers["X-Event-Outcome"] == "timeout"
            assert bound <= time.monotonic() - started < bound + 0.4


async def test_after_a_resync_the_wait_looks_at_the_workers_records_again(live: Live) -> None:
    live.put("b1", 1)
    event_id = uuid.uuid4()
    reading = asyncio.create_task(live.client.get(STATUS.format("b1") + f"?wait_for_event={event_id}", headers=AUTH))
    await asyncio.sleep(0.05)
    live.model.settled[event_id] = "applied"  # committed while the subscription was reconnecting
    live.cache.feed.publish(RESYNC)
    assert (await asyncio.wait_for(reading, 1)).headers["X-Event-Outcome"] == "applied"


async def test_a_read_without_an_event_neither_waits_nor_says_anything(live: Live) -> None:
    live.put("b1", 1)
    response = await live.client.get(STATUS.format("b1"), headers=AUTH)
    assert response.status_code == 200 and "X-Event-Outcome" not in response.headers


@pytest.mark.parametrize(
    ("query", "headers", "parameter"),
    [
        ("?wait_for_event=not-a-uuid", {}, "wait_for_event"),
        ("?wait_for_event=", {}, "wait_for_event"),
        ("", {"X-Wait-For-Event": "42"}, "X-Wait-For-Event"),
        (f"?wait_for_event={uuid.uuid4()}&wait_seconds=0", {}, "wait_seconds"),
        (f"?wait_for_event={uuid.uuid4()}&wait_seconds=soon", {}, "wait_seconds"),
    ],
)
async def test_an_invalid_wait_is_a_400_naming_the_parameter(
    live: Live, query: str, headers: dict[str, str], parameter: str
) -> None:
    live.put("b1", 1)
    response = await live.client.get(STATUS.format("b1") + query, headers={**AUTH, **headers})
    body = await response.get_json()
    assert response.status_code == 400 and body["error"] == "invalid_parameter"
    assert body["message"].startswith(parameter), body


# auth, the same matrix as the other routes


@pytest.mark.parametrize(
    "path",
    [STATUS.format("b1") + f"?wait_for_event={uuid.uuid4()}", BATCH_FEED.format("b1"), USER_FEED.format("teacher-1")],
)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Internal-API-Key": "wrong", "X-Service-ID": "bff-teacher-service"}, 401),
        ({"X-Internal-API-Key": API_KEY}, 403),
        ({"X-Internal-API-Key": API_KEY, "X-Service-ID": "someone-else"}, 403),
    ],
)
async def test_the_new_routes_refuse_callers_as_the_others_do(
    live: Live, path: str, headers: dict[str, str], status: int
) -> None:
    response = await live.client.get(path, headers=headers)
    assert response.status_code == status and (await response.get_json())["error"] in {"unauthorized", "forbidden"}


# the batch feed


async def test_a_batch_feed_sends_the_current_state_at_once_then_each_committed_version(live: Live) -> None:
    live.put("b1", 1)
    async with stream(live, BATCH_FEED.format("b1")) as events:
        first = await events.next_event()
        assert events.connection.headers is not None
        assert events.connection.headers["Content-Type"].startswith("text/event-stream")
        assert first["id"] == "1" and first["event"] == "batch"
        assert first["data"] == {"batch_id": "b1", "version": 1, "client_status": "processing"}
        for version in (2, 3):
            await live.commit("b1", version)
            assert (await events.next_event())["id"] == str(version)


async def test_include_status_carries_the_status_body(live: Live) -> None:
    live.put("b1", 5)
    async with stream(live, BATCH_FEED.format("b1") + "?include=status") as events:
        data = (await events.next_event())["data"]
        assert data["status"] == a_batch("b1").model_dump(mode="json") and data["version"] == 5


async def test_last_event_id_resumes_after_the_version_the_client_has(live: Live) -> None:
    live.put("b1", 4)
    async with stream(live, BATCH_FEED.format("b1"), {"Last-Event-ID": "4"}) as events:
        assert await events.nothing_within(0.2)  # it has version 4 already
        await live.commit("b1", 5)
        assert (await events.next_event())["id"] == "5"
    async with stream(live, BATCH_FEED.format("b1"), {"Last-Event-ID": "3"}) as events:
        assert (await events.next_event())["id"] == "5"  # newer than what it had: sent at once


async def test_a_batch_not_yet_registered_gets_its_first_event_when_it_is(live: Live) -> None:
    async with stream(live, BATCH_FEED.format("later")) as events:
        assert await events.nothing_within(0.1)
        await live.commit("later", 1)
        assert (await events.next_event())["id"] == "1"


async def test_an_idle_stream_gets_heartbeats() -> None:
    async with live_api(live_feed_heartbeat_seconds=0.05) as live:
        live.put("b1", 1)
        async with stream(live, BATCH_FEED.format("b1")) as events:
            await events.next_event()
            assert await events.next_block(0.5) == b": heartbeat"


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
async def test_a_last_event_id_the_feed_never_sent_is_a_400(live: Live, value: str) -> None:
    response = await live.client.get(BATCH_FEED.format("b1"), headers={**AUTH, "Last-Event-ID": value})
    body = await response.get_json()
    assert response.status_code == 400 and body["message"].startswith("Last-Event-ID")


# the user feed


async def test_a_user_feed_sends_the_newest_batches_then_every_change_of_any_of_them(live: Live) -> None:
    live.put("old", 1)
    live.put("b:1/x", 2)  # an id with the separator and a slash: percent-encoded in the event id
    live.put("other", 1, user_id="teacher-2")
    async with stream(live, USER_FEED.format("teacher-1")) as events:
        opened = {(await events.next_event())["id"] for _ in range(2)}
        assert opened == {"old:1", "b%3A1%2Fx:2"}
        await live.commit("old", 2)
        changed = await events.next_event()
        assert changed["id"] == "old:2" and changed["data"]["version"] == 2


async def test_a_user_feed_resume_skips_the_batch_the_client_has(live: Live) -> None:
    live.put("a", 3)
    async with stream(live, USER_FEED.format("teacher-1"), {"Last-Event-ID": "a:3"}) as events:
        assert await events.nothing_within(0.2)
    async with stream(live, USER_FEED.format("teacher-1"), {"Last-Event-ID": "a:2"}) as events:
        assert (await events.next_event())["id"] == "a:3"


# the cap


async def test_beyond_the_cap_a_stream_is_refused_with_503_and_a_closed_one_frees_its_slot() -> None:
    async with live_api(live_feed_max_streams=1) as live:
        live.put("b1", 1)
        async with stream(live, BATCH_FEED.format("b1")) as events:
            await events.next_event()
            refused = await live.client.get(USER_FEED.format("teacher-1"), headers=AUTH)
            assert refused.status_code == 503 and (await refused.get_json())["error"] == "service_unavailable"
            assert refused.headers["Retry-After"] == "5"
        for _ in range(50):  # the disconnect reaches the handler through the event loop
            reopened = cast(Connection, live.client.request(BATCH_FEED.format("b1"), headers=AUTH))
            async with reopened:
                await reopened.send_complete()
                block = await asyncio.wait_for(reopened.receive(), 2)
                await reopened.disconnect()
            if reopened.status_code == 200:
                assert block.startswith(b"id: 1")
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the closed stream's slot was never freed")


async def test_the_openapi_document_shows_the_wait_and_both_feeds(live: Live) -> None:
    document = await (await live.client.get("/openapi.json")).get_json()
    status = document["paths"]["/internal/v1/batches/{batch_id}/status"]["get"]
    assert {"wait_for_event", "wait_seconds", "x-wait-for-event"} <= {p["name"] for p in status["parameters"]}
    for path in ("/internal/v1/batches/{batch_id}/events", "/internal/v1/batches/user/{user_id}/events"):
        feed = document["paths"][path]["get"]
        assert "text/event-stream" in feed["responses"]["200"]["content"]
        assert {"last-event-id", "include"} <= {p["name"] for p in feed["parameters"]}
        assert {"400", "401", "403", "503"} <= set(feed["responses"])
