"""The routes against the in-memory read side: auth, shapes, ETags, errors and metric labels."""

from __future__ import annotations

import pytest

from common_core.enums import BatchStatus
from result_aggregator_service.tests.unit.read_side import AUTH, Api, a_batch, api, put

__all__ = ["api"]  # the fixture

STATUS = "/internal/v1/batches/{}/status"
LIST = "/internal/v1/batches/user/{}"


async def test_a_status_is_the_read_models_answer_with_an_etag_of_its_version(api: Api) -> None:
    batch = a_batch("b1", essays=2)
    put(api, batch, version=7)
    response = await api.client.get(STATUS.format("b1"), headers={**AUTH, "X-Correlation-ID": "corr-1"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert await response.get_json() == batch.model_dump(mode="json")
    assert response.headers["ETag"] == 'W/"b1-7"' and response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Correlation-ID"] == "corr-1"


async def test_a_matching_if_none_match_answers_304_without_a_body(api: Api) -> None:
    put(api, a_batch("b1"), version=3)
    assert (await api.client.get(STATUS.format("b1"), headers={**AUTH, "If-None-Match": 'W/"b1-3"'})).status_code == 304
    assert (await api.client.get(STATUS.format("b1"), headers={**AUTH, "If-None-Match": 'W/"b1-2"'})).status_code == 200
    first = await api.client.get(LIST.format("teacher-1"), headers=AUTH)
    again = await api.client.get(LIST.format("teacher-1"), headers={**AUTH, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and await again.get_data() == b""


async def test_a_users_batches_come_newest_first_a_page_at_a_time(api: Api) -> None:
    for minute in range(5):
        put(api, a_batch(f"b{minute}", created_minutes=minute))
    put(api, a_batch("someone-elses", user_id="teacher-2"))
    body = await (await api.client.get(LIST.format("teacher-1") + "?limit=2&offset=1", headers=AUTH)).get_json()
    assert [b["batch_id"] for b in body["batches"]] == ["b3", "b2"]
    assert body["pagination"] == {"limit": 2, "offset": 1, "total": 5}


async def test_the_status_filter_is_on_the_internal_status(api: Api) -> None:
    put(api, a_batch("done"), status=BatchStatus.COMPLETED_SUCCESSFULLY)
    put(api, a_batch("running"), status=BatchStatus.PROCESSING_PIPELINES)
    path = LIST.format("teacher-1") + "?status=completed_successfully"
    body = await (await api.client.get(path, headers=AUTH)).get_json()
    assert [b["batch_id"] for b in body["batches"]] == ["done"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=2.5", "limit"),
        ("?limit=", "limit"),
        ("?limit=1&limit=2", "limit"),
        ("?offset=-1", "offset"),
        ("?offset=x", "offset"),
        ("?offset=99999999999999999999999", "offset"),
        ("?status=processing", "status"),  # a client status, not an internal one
        ("?status=COMPLETED_SUCCESSFULLY", "status"),
        ("?status=nonsense", "status"),
    ],
)
async def test_a_malformed_or_out_of_range_parameter_is_a_400_naming_it(api: Api, query: str, parameter: str) -> None:
    response = await api.client.get(LIST.format("some-user") + query, headers=AUTH)
    assert response.status_code == 400 and response.content_type == "application/json"
    body = await response.get_json()
    assert body["error"] == "invalid_parameter" and body["message"].startswith(f"{parameter}:")
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]


async def test_a_correlation_id_is_echoed_or_generated_on_every_answer(api: Api) -> None:
    offered = await api.client.get("/metrics", headers={"X-Correlation-ID": "req-123"})
    generated = await api.client.get(STATUS.format("b"))
    unsafe = await api.client.get("/metrics", headers={"X-Correlation-ID": "id with spaces;" + "x" * 200})
    unusable = await api.client.get("/metrics", headers={"X-Correlation-ID": " ;; "})
    assert offered.headers["X-Correlation-ID"] == "req-123"
    assert len(generated.headers["X-Correlation-ID"]) == 36
    assert (await generated.get_json())["correlation_id"] == generated.headers["X-Correlation-ID"]
    assert unsafe.headers["X-Correlation-ID"] == ("idwithspaces" + "x" * 200)[:128]  # kept, made safe
    assert len(unusable.headers["X-Correlation-ID"]) == 36  # nothing safe left: a new one


async def test_an_unregistered_batch_is_a_json_404(api: Api) -> None:
    response = await api.client.get(STATUS.format("nobody"), headers=AUTH)
    assert response.status_code == 404 and (await response.get_json())["error"] == "not_found"


@pytest.mark.parametrize("path", ["/internal/v1/batches/a%00b/status", "/internal/v1/batches/user/a%00b"])
async def test_a_nul_in_a_path_id_is_a_json_400_not_a_500(api: Api, path: str) -> None:
    response = await api.client.get(path, headers=AUTH)
    assert response.status_code == 400 and (await response.get_json())["error"] == "invalid_parameter"


async def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = await api.client.get("/nowhere", headers=AUTH)
    assert missing.status_code == 404 and (await missing.get_json())["error"] == "not_found"
    wrong = await api.client.post(STATUS.format("b1"), headers=AUTH)
    assert wrong.status_code == 405 and (await wrong.get_json())["error"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]


async def test_a_failing_read_model_is_a_500_without_its_details_and_an_outage_a_503(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*_: object) -> None:
        raise RuntimeError("kaboom: internal detail")

    monkeypatch.setattr(api.model, "batch_status", explode)
    response = await api.client.get(STATUS.format("b1"), headers=AUTH)
    assert response.status_code == 500 and "kaboom" not in (await response.get_json())["message"]

    async def unreachable(*_: object) -> None:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(api.model, "batch_status", unreachable)
    response = await api.client.get(STATUS.format("b1"), headers=AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"


async def test_no_metric_label_takes_a_value_the_client_invents(api: Api) -> None:
    await api.client.open("/healthz-nope", method="BREW", json=None)
    await api.client.get("/internal/v1/batches/made-up-id/status", headers=AUTH)
    exposition = await (await api.client.get("/metrics")).get_data(as_text=True)
    assert 'method="other"' in exposition and "BREW" not in exposition
    assert "healthz-nope" not in exposition and "made-up-id" not in exposition
