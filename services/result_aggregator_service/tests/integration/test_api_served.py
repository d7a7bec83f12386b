"""The API as deployed (uvicorn, two worker processes): invalidation across processes, metrics summed over
the processes, and a schemathesis run against its own /openapi.json finding no 5xx and no answer outside
the document."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from dishka import AsyncContainer
from hypothesis import HealthCheck, given, settings

from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import AUTH, BATCH_STATUS, USER_BATCHES, ingest

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


async def test_a_read_after_the_worker_commits_never_sees_the_older_state(
    served_api: str, api_services: AsyncContainer
) -> None:
    batch_id, user_id = samples.new_id("batch-"), samples.new_id("user-")
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"], user_id=user_id)])
    async with httpx.AsyncClient(base_url=served_api, headers=AUTH) as client:
        for _ in range(4):  # both worker processes answer and cache
            assert (await client.get(BATCH_STATUS.format(batch_id))).json()["essays"][0]["filename"] is None
            assert (await client.get(USER_BATCHES.format(user_id))).json()["pagination"]["total"] == 1

        for n in range(5):  # the write side (this process) commits and invalidates; the API processes follow
            await ingest(api_services, [samples.slot_assigned(batch_id, "e1", file_name=f"v{n}.docx")])
            await ingest(api_services, [samples.batch_registered(samples.new_id("batch-"), ["e1"], user_id=user_id)])
            for _ in range(2):
                status = (await client.get(BATCH_STATUS.format(batch_id))).json()
                listing = (await client.get(USER_BATCHES.format(user_id))).json()
                assert status["essays"][0]["filename"] == f"v{n}.docx"
                assert listing["pagination"]["total"] == n + 2


async def test_live_streams_on_every_server_process_see_a_commit(served_api: str, api_services: AsyncContainer) -> None:
    batch_id = samples.new_id("batch-")
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"])])
    path = f"/internal/v1/batches/{batch_id}/events"
    async with contextlib.AsyncExitStack() as streams:
        opened = []
        for _ in range(8):  # a connection each: both processes (each with its own subscription) hold some
            client = await streams.enter_async_context(httpx.AsyncClient(base_url=served_api, headers=AUTH))
            response = await streams.enter_async_context(client.stream("GET", path, timeout=30))
            lines = response.aiter_lines()
            assert await anext(id_line(lines)) == "id: 1"
            opened.append(lines)
        await ingest(api_services, [samples.slot_assigned(batch_id, "e1")])
        async with asyncio.timeout(10):
            assert [await anext(id_line(lines)) for lines in opened] == ["id: 2"] * 8


async def id_line(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        if line.startswith("id: "):
            yield line


async def test_metrics_count_the_requests_of_every_server_process(served_api: str) -> None:
    async def answered() -> float:
        text = (await client.get("/metrics")).text
        route = 'route="/internal/v1/batches/<batch_id>/status"'
        lines = [line for line in text.splitlines() if line.startswith("ras_http_requests_total{") and route in line]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    async with httpx.AsyncClient(base_url=served_api, headers=AUTH) as client:
        before = await answered()
        for _ in range(20):  # new connections each time: both processes answer some
            async with httpx.AsyncClient(base_url=served_api, headers=AUTH) as fresh:
                await fresh.get(BATCH_STATUS.format(samples.new_id("batch-")))
        assert await answered() - before == 20


@pytest.fixture(scope="session")
def served_schema(served_api: str) -> Any:
    return schemathesis.openapi.from_url(f"{served_api}/openapi.json")


# One test per operation, driven with hypothesis directly: schemathesis's pytest loader (`from_fixture`)
# reads `request.node._nodeid`, which pytest 9.2 no longer has.
@pytest.mark.parametrize(
    "path",
    [
        "/internal/v1/batches/{batch_id}/status",
        "/internal/v1/batches/{batch_id}/essays/{essay_id}",
        "/internal/v1/batches/user/{user_id}",
        "/healthz",
    ],
)
def test_the_served_api_keeps_to_its_openapi_document(path: str, served_schema: Any) -> None:
    operation = served_schema[path]["GET"]

    @given(case=operation.as_strategy())
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    def call_and_validate(case: Any) -> None:
        case.call_and_validate(headers=AUTH)

    call_and_validate()
