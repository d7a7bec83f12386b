"""A batch status this process holds a local copy of is sent before Quart sees the request
(entrypoints/fast_status.py): the same answer the route gives, counted the same, and only for a plain,
authorised hit — everything else still goes through the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from dishka import AsyncContainer
from quart import Quart, request

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import create_app
from result_aggregator_service.tests.integration.api_support import AUTH, BATCH_STATUS

from .test_api_cache import lookups, registered_batch

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


@pytest.fixture
async def counted_app(api_settings: Settings, api_services: AsyncContainer) -> AsyncIterator[tuple[Quart, list[str]]]:
    """The app, with a first hook (before auth) that records each request Quart itself handles."""
    app = create_app(api_settings, api_services)
    handled: list[str] = []

    async def record() -> None:
        handled.append(request.path)

    app.before_request_funcs.setdefault(None, []).insert(0, record)

    async with app.test_app():
        yield app, handled


async def test_a_local_hit_skips_quart_and_answers_what_the_route_answers(
    counted_app: tuple[Quart, list[str]], api_services: AsyncContainer
) -> None:
    app, handled = counted_app
    client = app.test_client()
    batch_id = await registered_batch(api_services)
    path = BATCH_STATUS.format(batch_id)
    by_route = await client.get(path, headers={**AUTH, "X-Correlation-ID": "c-1"})  # a miss: the route fills
    hits_before = await lookups(api_services, "hit")
    fast = await client.get(path, headers={**AUTH, "X-Correlation-ID": "c-2"})
    assert handled == [path]  # the second request never reached Quart
    assert fast.status_code == by_route.status_code == 200
    assert await fast.get_data() == await by_route.get_data()
    for header in ("ETag", "Cache-Control", "Content-Type"):
        assert fast.headers[header] == by_route.headers[header]
    assert fast.headers["X-Correlation-ID"] == "c-2"
    assert await lookups(api_services, "hit") == hits_before + 1


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"X-Internal-API-Key": "wrong", "X-Service-ID": "bff-teacher-service"}, "", 401),
        ({**AUTH, "X-Service-ID": "not-allowed"}, "", 403),
        ({**AUTH, "If-None-Match": "*"}, "", 304),
        (AUTH, "?wait_for_event=not-a-uuid", 400),
    ],
)
async def test_anything_but_a_plain_authorised_hit_is_left_to_the_app(
    counted_app: tuple[Quart, list[str]], api_services: AsyncContainer, headers: dict[str, str], query: str, status: int
) -> None:
    app, handled = counted_app
    client = app.test_client()
    batch_id = await registered_batch(api_services)
    path = BATCH_STATUS.format(batch_id)
    await client.get(path, headers=AUTH)  # now held locally
    answer = await client.get(path + query, headers=headers)
    assert answer.status_code == status
    assert handled == [path, path]
