"""Service auth on /internal/v1/*: 401 without the right key, 403 for a caller not on the allowlist
(against the in-memory read side); outside development the API does not start without a key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import structlog

from result_aggregator_service.config import ConfigurationError, Environment, Settings
from result_aggregator_service.entrypoints.api import create_app
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import unused_port
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


def test_outside_development_the_api_does_not_start_without_a_key() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("RESULT_AGGREGATOR_")}
    env.update({"RESULT_AGGREGATOR_ENVIRONMENT": "production", "RESULT_AGGREGATOR_HTTP_PORT": str(unused_port())})
    started = subprocess.run(
        [sys.executable, "-m", "result_aggregator_service.entrypoints.api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        "result_aggregator API cannot start: RESULT_AGGREGATOR_INTERNAL_API_KEY is not set. Set it to the shared "
        "secret of the internal API, or set RESULT_AGGREGATOR_ENVIRONMENT=development to use the development key."
    ]
    with pytest.raises(ConfigurationError):
        create_app(Settings(environment=Environment.PRODUCTION, internal_api_key=None))
