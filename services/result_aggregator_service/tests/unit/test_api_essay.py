"""The essay route against the in-memory read side: shape, ETags, errors, auth, and its cache under the batch's."""

from __future__ import annotations

import pytest

from result_aggregator_service.api_models import EssayDetailResponse
from result_aggregator_service.entrypoints.routes import ESSAY_ROUTE
from result_aggregator_service.service_layer.ports import BatchChange
from result_aggregator_service.tests.unit.read_side import AUTH, EPOCH, Api, a_batch, api, put

__all__ = ["api"]  # the fixture

ESSAY = "/internal/v1/batches/{}/essays/{}"


def a_detail(batch_id: str, essay_id: str) -> EssayDetailResponse:
    return EssayDetailResponse(
        batch_id=batch_id,
        essay_id=essay_id,
        filename="essay.docx",
        text_storage_id="text-1",
        spellcheck_status="completed",
        spellcheck_correction_count=3,
        spellcheck_metrics={"total_corrections": 3, "word_count": 250},
        last_updated=EPOCH,
    )


async def test_an_essay_is_the_read_models_answer_with_the_batch_versions_etag(api: Api) -> None:
    put(api, a_batch("b1", essays=2), version=7)
    detail = a_detail("b1", "b1-e1")
    api.model.put_essay(detail)

    response = await api.client.get(ESSAY.format("b1", "b1-e1"), headers=AUTH)

    assert response.status_code == 200 and response.mimetype == "application/json"
    assert await response.get_json() == detail.model_dump(mode="json")
    assert response.headers["ETag"] == 'W/"b1/b1-e1-7"' and response.headers["Cache-Control"] == "no-cache"


async def test_an_essay_carries_the_fields_of_its_item_in_the_batch_status(api: Api) -> None:
    put(api, a_batch("b1", essays=2))
    status = await (await api.client.get("/internal/v1/batches/b1/status", headers=AUTH)).get_json()
    essay = await (await api.client.get(ESSAY.format("b1", "b1-e0"), headers=AUTH)).get_json()
    assert essay == {**status["essays"][0], "batch_id": "b1", "text_storage_id": None, "spellcheck_metrics": None}


async def test_a_matching_if_none_match_answers_304(api: Api) -> None:
    put(api, a_batch("b1"), version=3)
    path = ESSAY.format("b1", "b1-e0")
    not_modified = await api.client.get(path, headers={**AUTH, "If-None-Match": 'W/"b1/b1-e0-3"'})
    assert not_modified.status_code == 304 and await not_modified.get_data() == b""
    assert (await api.client.get(path, headers={**AUTH, "If-None-Match": 'W/"b1/b1-e0-2"'})).status_code == 200


@pytest.mark.parametrize(("batch_id", "essay_id"), [("unknown", "e1"), ("b1", "not-in-b1")])
async def test_an_unknown_batch_or_essay_is_a_404_in_json(api: Api, batch_id: str, essay_id: str) -> None:
    put(api, a_batch("b1"))
    response = await api.client.get(ESSAY.format(batch_id, essay_id), headers=AUTH)
    assert response.status_code == 404 and response.content_type == "application/json"
    body = await response.get_json()
    assert body["error"] == "not_found" and essay_id in body["message"]
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]


@pytest.mark.parametrize(
    ("path", "parameter"), [(ESSAY.format("b%00", "e"), "batch_id"), (ESSAY.format("b", "e%00"), "essay_id")]
)
async def test_a_nul_in_either_id_is_a_400_naming_it(api: Api, path: str, parameter: str) -> None:
    response = await api.client.get(path, headers=AUTH)
    body = await response.get_json()
    assert response.status_code == 400 and body["error"] == "invalid_parameter"
    assert body["message"].startswith(f"{parameter}:")


async def test_the_essay_route_needs_the_key_and_an_allowed_service(api: Api) -> None:
    put(api, a_batch("b1"))
    path = ESSAY.format("b1", "b1-e0")
    assert (await api.client.get(path)).status_code == 401
    assert (await api.client.get(path, headers={**AUTH, "X-Internal-API-Key": "wrong"})).status_code == 401
    assert (await api.client.get(path, headers={**AUTH, "X-Service-ID": "stranger"})).status_code == 403


async def test_a_cached_essay_is_served_until_its_batch_changes(api: Api) -> None:
    put(api, a_batch("b1"), version=1)
    path = ESSAY.format("b1", "b1-e0")
    first = await api.client.get(path, headers=AUTH)
    queries = api.model.queries
    again = await api.client.get(path, headers=AUTH)
    assert api.model.queries == queries and await again.get_data() == await first.get_data()
    assert api.lookups(ESSAY_ROUTE, "hit") == 1 and api.lookups(ESSAY_ROUTE, "miss") == 1

    changed = a_batch("b1").model_copy(update={"essays": [a_batch("b1").essays[0].model_copy(update={"cj_rank": 2})]})
    put(api, changed, version=2)
    change = BatchChange("b1", 2)
    await api.cache.batches_changing([change])
    during = await api.client.get(path, headers=AUTH)  # answered from the read model, never cached meanwhile
    assert (await during.get_json())["cj_rank"] == 2 and api.cache.state.essays.get("b1") is None
    await api.cache.batches_changed([change])
    after = await api.client.get(path, headers=AUTH)

    assert (await after.get_json())["cj_rank"] == 2 and after.headers["ETag"] == 'W/"b1/b1-e0-2"'
    assert api.model.queries == queries + 2


async def test_an_unknown_essay_is_not_cached(api: Api) -> None:
    put(api, a_batch("b1"))
    for _ in range(2):
        assert (await api.client.get(ESSAY.format("b1", "nope"), headers=AUTH)).status_code == 404
    assert api.model.queries == 2 and not api.cache.state.essays


async def test_without_the_cache_the_essay_is_answered_from_the_read_model(api: Api) -> None:
    put(api, a_batch("b1"))
    api.cache.state.available = False
    response = await api.client.get(ESSAY.format("b1", "b1-e0"), headers=AUTH)
    assert response.status_code == 200 and api.lookups(ESSAY_ROUTE, "error") == 1
