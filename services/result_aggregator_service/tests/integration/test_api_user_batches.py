"""GET /internal/v1/batches/user/{user_id}: newest first, a right total, the status filter, and every 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer

from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import AUTH, USER_BATCHES, Client, ingest

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


async def register_batches(container: AsyncContainer, user_id: str, count: int) -> list[str]:
    """`count` batches of the user, one registered per minute; returns their ids newest first."""
    start = datetime.now(UTC) - timedelta(hours=1)
    batch_ids = [samples.new_id("batch-") for _ in range(count)]
    await ingest(
        container,
        [
            samples.batch_registered(batch_id, ["e1"], user_id=user_id, event_timestamp=start + timedelta(minutes=n))
            for n, batch_id in enumerate(batch_ids)
        ],
    )
    return batch_ids[::-1]


async def page(client: Client, user_id: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"{USER_BATCHES.format(user_id)}{query}", headers=AUTH)
    assert response.status_code == 200, await response.get_data()
    body: dict[str, Any] = await response.get_json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [batch["batch_id"] for batch in body["batches"]]


async def test_pages_walk_the_batches_newest_first_with_the_total(client: Client, api_services: AsyncContainer) -> None:
    user_id = samples.new_id("user-")
    newest_first = await register_batches(api_services, user_id, 5)

    first = await page(client, user_id, "?limit=2")
    second = await page(client, user_id, "?limit=2&offset=2")
    last = await page(client, user_id, "?limit=2&offset=4")

    assert ids(first) + ids(second) + ids(last) == newest_first
    assert first["pagination"] == {"limit": 2, "offset": 0, "total": 5}
    assert last["pagination"] == {"limit": 2, "offset": 4, "total": 5}
    assert first["batches"][0]["user_id"] == user_id and first["batches"][0]["essays"][0]["essay_id"] == "e1"


async def test_defaults_are_limit_20_offset_0_and_an_empty_status_means_no_filter(
    client: Client, api_services: AsyncContainer
) -> None:
    user_id = samples.new_id("user-")
    newest_first = await register_batches(api_services, user_id, 2)

    for query in ("", "?status=", "?limit=20&offset=0&status="):
        body = await page(client, user_id, query)
        assert ids(body) == newest_first
        assert body["pagination"] == {"limit": 20, "offset": 0, "total": 2}


async def test_an_offset_past_the_end_gives_an_empty_page_with_the_total(
    client: Client, api_services: AsyncContainer
) -> None:
    user_id = samples.new_id("user-")
    await register_batches(api_services, user_id, 3)

    body = await page(client, user_id, "?offset=3")

    assert body == {"batches": [], "pagination": {"limit": 20, "offset": 3, "total": 3}}


async def test_a_user_without_batches_gets_an_empty_first_page(client: Client) -> None:
    body = await page(client, samples.new_id("nobody-"), "?limit=100")

    assert body == {"batches": [], "pagination": {"limit": 100, "offset": 0, "total": 0}}


async def test_the_status_filter_uses_the_internal_status_and_counts_only_matches(
    client: Client, api_services: AsyncContainer
) -> None:
    user_id = samples.new_id("user-")
    done, failed, *pending = await register_batches(api_services, user_id, 4)
    later = datetime.now(UTC)
    await ingest(
        api_services,
        [
            samples.pipeline_completed(done, event_timestamp=later),
            samples.phase_outcome(failed, ["e1"], phase_status="failed_critically", event_timestamp=later),
        ],
    )

    completed = await page(client, user_id, "?status=completed_successfully")
    critically = await page(client, user_id, "?status=failed_critically&limit=1")
    waiting = await page(client, user_id, "?status=awaiting_content_validation")

    assert (ids(completed), completed["pagination"]["total"]) == ([done], 1)
    assert (ids(critically), critically["batches"][0]["overall_status"]) == ([failed], "failed")
    assert (ids(waiting), waiting["pagination"]["total"]) == (pending, 2)


async def test_batches_of_other_users_and_unregistered_batches_are_not_listed(
    client: Client, api_services: AsyncContainer
) -> None:
    user_id = samples.new_id("user-")
    mine = await register_batches(api_services, user_id, 1)
    await register_batches(api_services, samples.new_id("someone-else-"), 2)
    await ingest(api_services, [samples.spellcheck_result(samples.new_id("batch-"), "e1")])

    assert ids(await page(client, user_id)) == mine
