"""ETags (the batch's version; a hash of the page) and If-None-Match → 304, on hits and misses alike."""

from __future__ import annotations

import pytest
from dishka import AsyncContainer
from redis.asyncio import Redis

from result_aggregator_service.adapters.response_cache import batch_key
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import AUTH, BATCH_STATUS, USER_BATCHES, Client, ingest

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


async def test_the_status_etag_carries_the_batch_version_and_moves_with_it(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    changes = await ingest(api_services, [samples.batch_registered(batch_id, ["e1"])])
    first = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)

    later = await ingest(api_services, [samples.slot_assigned(batch_id, "e1")])
    second = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)

    assert first.headers["ETag"] == f'W/"{batch_id}-{changes.changes[0].version}"'
    assert second.headers["ETag"] == f'W/"{batch_id}-{later.changes[0].version}"'


@pytest.mark.parametrize("cached", [True, False], ids=["from-cache", "from-postgresql"])
async def test_a_matching_if_none_match_gets_304_without_a_body(
    cached: bool, client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"])])
    etag = (await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)).headers["ETag"]
    if not cached:
        await (await api_services.get(Redis)).delete(batch_key(batch_id))

    for offered in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
        response = await client.get(BATCH_STATUS.format(batch_id), headers={**AUTH, "If-None-Match": offered})
        assert response.status_code == 304, offered
        assert await response.get_data() == b""
        assert response.headers["ETag"] == etag


async def test_a_stale_if_none_match_gets_the_new_state(client: Client, api_services: AsyncContainer) -> None:
    batch_id = samples.new_id("batch-")
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"])])
    old = (await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)).headers["ETag"]
    await ingest(api_services, [samples.slot_assigned(batch_id, "e1", file_name="new.docx")])

    response = await client.get(BATCH_STATUS.format(batch_id), headers={**AUTH, "If-None-Match": old})

    assert response.status_code == 200
    assert (await response.get_json())["essays"][0]["filename"] == "new.docx"


async def test_a_page_etag_is_its_content_hash(client: Client, api_services: AsyncContainer) -> None:
    user_id = samples.new_id("user-")
    await ingest(api_services, [samples.batch_registered(samples.new_id("batch-"), ["e1"], user_id=user_id)])
    path = USER_BATCHES.format(user_id)
    first = await client.get(path, headers=AUTH)
    etag = first.headers["ETag"]

    unchanged = await client.get(path, headers={**AUTH, "If-None-Match": etag})
    await ingest(api_services, [samples.batch_registered(samples.new_id("batch-"), ["e1"], user_id=user_id)])
    changed = await client.get(path, headers={**AUTH, "If-None-Match": etag})

    assert not etag.startswith("W/")
    assert unchanged.status_code == 304
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert (await changed.get_json())["pagination"]["total"] == 2
