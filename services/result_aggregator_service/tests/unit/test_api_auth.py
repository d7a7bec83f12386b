"""Service auth on /internal/v1/*: 401 without the right key, 403 for a caller not on the allowlist
(against the in-memory read side)."""

from __future__ import annotations

import pytest
import structlog

from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.unit.read_side import API_KEY, Api, api

__all__ = ["api"]  # the fixture
BATCH_STATUS = "/internal/v1/batches/{}/status"
USER_BATCHES = "/internal/v1/batches/user/{}"

ROUTES = [BATCH_STATUS.format("some-batch"), USER_BATCHES.format("some-user"), "/internal/v1/no-such-route"]
KEY, SERVICE = "X-Internal-API-Key", "X-Service-ID"


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({SERVICE: "api-gateway-service"}, 401, "unauthorized"),
        ({KEY: "wrong-key", SERVICE: "api-gateway-service"}, 401, "unauthorized"),
        ({KEY: API_KEY[:-1], SERVICE: "api-gateway-service"}, 401, "unauthorized"),
        ({KEY: "", SERVICE: "api-gateway-service"}, 401, "unauthorized"),
        ({KEY: API_KEY}, 403, "forbidden"),
        ({KEY: API_KEY, SERVICE: "unknown-service"}, 403, "forbidden"),
        ({KEY: API_KEY, SERVICE: "API-GATEWAY-SERVICE"}, 403, "forbidden"),
    ],
    ids=["no-headers", "no-key", "wrong-key", "key-prefix", "empty-key", "no-service", "unknown-service", "case"],
)
async def test_callers_without_the_key_or_the_allowlist_are_refused(
    path: str, headers: dict[str, str], status: int, code: str, api: Api
) -> None:
    response = await api.client.get(path, headers=headers)

    assert response.status_code == status
    body = await response.get_json()
    assert body["error"] == code
    assert set(body) == {"error", "message", "correlation_id"}
    assert API_KEY not in (await response.get_data(as_text=True))


@pytest.mark.parametrize("service", ["api-gateway-service", "bff-teacher-service", "admin-dashboard-service"])
async def test_every_allowlisted_service_gets_through(service: str, api: Api) -> None:
    response = await api.client.get(
        USER_BATCHES.format(samples.new_id("user-")), headers={KEY: API_KEY, SERVICE: service}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/docs"])
async def test_metrics_and_the_api_document_need_no_auth(path: str, api: Api) -> None:
    assert (await api.client.get(path)).status_code == 200


async def test_the_key_never_reaches_the_logs(api: Api) -> None:
    with structlog.testing.capture_logs() as logs:
        await api.client.get(BATCH_STATUS.format("x"), headers={KEY: "a-wrong-secret", SERVICE: "api-gateway-service"})
        await api.client.get(BATCH_STATUS.format("x"), headers={KEY: API_KEY, SERVICE: "unknown-service"})
        await api.client.get("/boom-route-that-does-not-exist", headers={KEY: API_KEY})

    assert "a-wrong-secret" not in repr(logs)
    assert API_KEY not in repr(logs)
