"""The database circuit breaker in the API: PostgreSQL cut behind a proxy opens it, queries answer 503
with Retry-After without trying the database, /healthz and /metrics show it, and a probe closes it again."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import make_url

from result_aggregator_service.config import Settings
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import API_KEY, AUTH, BATCH_STATUS, Client, serving
from tests.tcp_proxy import TcpProxy

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra

COOL_DOWN_SECONDS = 0.5


async def _status_of_a_new_batch(client: Client) -> tuple[int, str | None, str]:
    response = await client.get(BATCH_STATUS.format(samples.new_id("batch-")), headers=AUTH)
    body = await response.get_json()
    return response.status_code, response.headers.get("Retry-After"), body["message"]


async def _circuit(client: Client) -> tuple[str, dict[str, float]]:
    health = await (await client.get("/healthz")).get_json()
    exposition = await (await client.get("/metrics")).get_data(as_text=True)
    [family] = [f for f in text_string_to_metric_families(exposition) if f.name == "ras_database_circuit_state"]
    return health["database_circuit"], {sample.labels["state"]: sample.value for sample in family.samples}


async def test_postgresql_down_opens_the_circuit_and_a_probe_after_the_cool_down_closes_it(settings: Settings) -> None:
    target = urlsplit(settings.database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    through_proxy = settings.model_copy(
        update={
            "database_url": make_url(settings.database_url)
            .set(host="127.0.0.1", port=proxy.port)
            .render_as_string(hide_password=False),
            "internal_api_key": SecretStr(API_KEY),
            "database_circuit_failure_threshold": 2,
            "database_circuit_cool_down_seconds": COOL_DOWN_SECONDS,
        }
    )
    try:
        async with serving(through_proxy) as client:
            assert (await _status_of_a_new_batch(client))[0] == 404  # the database answers: closed
            proxy.cut()
            for _ in range(2):  # each tries PostgreSQL and fails
                status, retry_after, message = await _status_of_a_new_batch(client)
                assert (status, retry_after, message) == (503, "1", "the read model is unavailable")

            status, retry_after, message = await _status_of_a_new_batch(client)
            assert (status, retry_after) == (503, "1")
            assert message == "the read model is unavailable (circuit open)"
            assert await _circuit(client) == ("open", {"closed": 0.0, "open": 1.0, "half_open": 0.0})

            proxy.restore()
            await asyncio.sleep(COOL_DOWN_SECONDS + 0.1)
            assert (await _status_of_a_new_batch(client))[0] == 404  # the probe reached PostgreSQL
            assert await _circuit(client) == ("closed", {"closed": 1.0, "open": 0.0, "half_open": 0.0})
    finally:
        proxy.cut()
