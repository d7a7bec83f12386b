"""One JSON error shape for every 4xx/5xx, correlation ids, request metrics by route template, and /healthz."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from dishka import AsyncContainer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import create_app
from result_aggregator_service.entrypoints.routes import BATCH_STATUS_ROUTE
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import (
    API_KEY,
    AUTH,
    BATCH_STATUS,
    Client,
    ingest,
    serving,
    unused_port,
)

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra


async def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.get_json()
    assert set(body) == {"error", "message", "correlation_id"} and body["error"] == code
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    return body


async def test_an_unexpected_exception_is_a_logged_500_in_the_error_shape(settings: Settings) -> None:
    app = create_app(settings)
    log_context: list[dict[str, Any]] = []

    @app.get("/explode")
    async def explode() -> str:
        log_context.append(structlog.contextvars.get_contextvars())
        raise RuntimeError("kaboom")

    async with app.test_app() as test_app:
        with structlog.testing.capture_logs() as logs:
            response = await test_app.test_client().get("/explode", headers={"X-Correlation-ID": "corr-500"})

    body = await error_of(response, 500, "internal_error")
    assert "kaboom" not in body["message"] and body["correlation_id"] == "corr-500"
    [logged] = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert logged["exc_info"] is True and logged["log_level"] == "error"
    assert log_context == [{"correlation_id": "corr-500"}]  # every log line of the request carries it


async def test_requests_are_counted_by_route_template_not_raw_path(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"])])
    await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)
    await client.get("/nowhere")

    exposition = await (await client.get("/metrics")).get_data(as_text=True)

    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    requests = {(s.labels["route"], s.labels["status"]) for s in families["ras_http_requests"].samples}
    assert (BATCH_STATUS_ROUTE, "200") in requests and ("<unmatched>", "404") in requests
    assert batch_id not in exposition
    latency = {s.labels["route"] for s in families["ras_http_request_duration_seconds"].samples}
    assert BATCH_STATUS_ROUTE in latency


async def test_health_reports_each_dependency_with_its_latency(client: Client) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "kafka"}
    for check in body["checks"].values():
        assert set(check) == {"status", "latency_ms"}
        assert check["status"] == "ok" and check["latency_ms"] >= 0


async def test_without_postgresql_health_is_503_and_queries_are_503_in_the_error_shape(settings: Settings) -> None:
    no_database = settings.model_copy(
        update={
            "database_url": f"postgresql+asyncpg://nobody:nothing@127.0.0.1:{unused_port()}/none",
            "internal_api_key": SecretStr(API_KEY),
        }
    )

    async with serving(no_database) as client:
        with structlog.testing.capture_logs() as logs:
            health = await client.get("/healthz")
        query = await client.get(BATCH_STATUS.format(samples.new_id("batch-")), headers=AUTH)

    assert health.status_code == 503
    body = await health.get_json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == {
        "status": "error",
        "latency_ms": body["checks"]["database"]["latency_ms"],
    }
    [logged] = [entry for entry in logs if entry["event"] == "health_check_failed"]
    assert logged["dependency"] == "database" and logged["error"]  # the detail is in the log, not the answer
    assert logged["error"] not in (await health.get_data(as_text=True))
    assert body["checks"]["redis"]["status"] == "ok"
    await error_of(query, 503, "service_unavailable")
    assert query.headers["Retry-After"] == "1"


async def test_without_kafka_health_is_degraded_but_200_and_the_metrics_say_kafka_is_down(settings: Settings) -> None:
    no_kafka = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{unused_port()}"})

    async with serving(no_kafka) as client:
        health = await client.get("/healthz")
        exposition = await (await client.get("/metrics")).get_data(as_text=True)

    assert health.status_code == 200
    body = await health.get_json()
    assert body["status"] == "degraded" and body["checks"]["kafka"]["status"] == "error"
    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    up = {sample.labels["dependency"]: sample.value for sample in families["ras_dependency_up"].samples}
    assert up == {"database": 1.0, "redis": 1.0, "kafka": 0.0}


async def test_the_openapi_document_describes_both_queries_and_a_docs_page_exists(client: Client) -> None:
    document = await (await client.get("/openapi.json")).get_json()
    docs = await client.get("/docs")

    paths = document["paths"]
    assert {"/internal/v1/batches/{batch_id}/status", "/internal/v1/batches/user/{user_id}", "/healthz"} <= set(paths)
    status_op = paths["/internal/v1/batches/{batch_id}/status"]["get"]
    schema = status_op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["title"] == "BatchStatusResponse"
    assert set(schema["required"]) >= {"batch_id", "user_id", "overall_status", "essays", "created_at"}
    assert status_op["security"] == [{"InternalApiKey": [], "ServiceId": []}]
    essay_op = paths["/internal/v1/batches/{batch_id}/essays/{essay_id}"]["get"]
    essay_schema = essay_op["responses"]["200"]["content"]["application/json"]["schema"]
    assert essay_schema["title"] == "EssayDetailResponse" and essay_op["security"] == status_op["security"]
    assert set(essay_schema["required"]) >= {"batch_id", "essay_id", "last_updated"}
    assert set(essay_op["responses"]) >= {"200", "400", "401", "403", "404", "503"}
    query_names = {p["name"] for p in paths["/internal/v1/batches/user/{user_id}"]["get"]["parameters"]}
    assert query_names == {"user_id", "limit", "offset", "status"}
    assert docs.status_code == 200 and "text/html" in docs.content_type
