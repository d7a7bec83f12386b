"""The essay route on PostgreSQL and Redis: what it shows, what is a 404, and its cache after a commit."""

from __future__ import annotations

import pytest
from dishka import AsyncContainer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from result_aggregator_service.adapters.response_cache import essays_key
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import (
    AUTH,
    BATCH_STATUS,
    Client,
    StatementLog,
    ingest,
)

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra

ESSAY = "/internal/v1/batches/{}/essays/{}"


async def test_an_essay_shows_its_slot_spellcheck_and_cj_results_as_the_batch_status_does(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    slot = samples.slot_assigned(batch_id, "e1", file_name="mine.docx")
    spellcheck = samples.spellcheck_result(batch_id, "e1", corrections=4)
    await ingest(
        api_services,
        [
            samples.batch_registered(batch_id, ["e1", "e2"]),
            slot,
            spellcheck,
            samples.assessment_result(batch_id, [samples.essay_result("e1", rank=2, grade="A")]),
        ],
    )

    response = await client.get(ESSAY.format(batch_id, "e1"), headers=AUTH)
    status_response = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)
    status = await status_response.get_json()

    assert response.status_code == 200
    essay = await response.get_json()
    item = next(e for e in status["essays"] if e["essay_id"] == "e1")
    assert essay == {
        **item,
        "batch_id": batch_id,
        "text_storage_id": slot["data"]["text_storage_id"],
        "spellcheck_metrics": spellcheck["data"]["correction_metrics"],
    }
    assert (essay["filename"], essay["spellcheck_status"], essay["spellcheck_correction_count"]) == (
        "mine.docx",
        "completed",
        4,
    )
    assert (essay["cj_rank"], essay["cj_letter_grade"]) == (2, "A")
    version = status_response.headers["ETag"].rsplit("-", 1)[1]  # the batch's: `W/"<batch_id>-<version>"`
    assert response.headers["ETag"] == f'W/"{batch_id}/e1-{version}'


async def test_unknown_batches_and_essays_and_unregistered_batches_are_404(
    client: Client, api_services: AsyncContainer
) -> None:
    registered, unregistered = samples.new_id("batch-"), samples.new_id("batch-")
    await ingest(
        api_services,
        [
            samples.batch_registered(registered, ["e1"]),
            samples.spellcheck_result(registered, "not-registered"),  # a result for an essay the batch lacks
            samples.spellcheck_result(unregistered, "e1"),  # results before the registration
        ],
    )
    for batch_id, essay_id in [(registered, "not-registered"), (unregistered, "e1"), ("never-seen", "e1")]:
        response = await client.get(ESSAY.format(batch_id, essay_id), headers=AUTH)
        assert response.status_code == 404 and (await response.get_json())["error"] == "not_found"
    assert (await client.get(ESSAY.format(registered, "e1"), headers=AUTH)).status_code == 200


async def test_a_cached_essay_is_served_from_redis_until_a_commit_changes_its_batch(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1", "e2"])])
    path = ESSAY.format(batch_id, "e1")
    before = await client.get(path, headers=AUTH)
    redis = await api_services.get(Redis)
    assert await redis.hexists(essays_key(batch_id), "e1")
    with StatementLog(await api_services.get(AsyncEngine)) as sql:
        hit = await client.get(path, headers=AUTH)
    assert sql.statements == [] and await hit.get_data() == await before.get_data()

    # a change to the other essay: the batch's version moves, so this essay's cached answer goes too
    await ingest(api_services, [samples.slot_assigned(batch_id, "e2")])
    assert not await redis.exists(essays_key(batch_id))
    await ingest(api_services, [samples.spellcheck_result(batch_id, "e1", corrections=9)])
    after = await client.get(path, headers=AUTH)

    assert (await before.get_json())["spellcheck_correction_count"] is None
    assert (await after.get_json())["spellcheck_correction_count"] == 9
    assert after.headers["ETag"] != before.headers["ETag"]
    assert (await client.get(path, headers={**AUTH, "If-None-Match": after.headers["ETag"]})).status_code == 304
