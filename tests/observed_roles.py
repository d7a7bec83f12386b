"""A worker and an API process scraped by the local stack's Prometheus every second, and a small client
of Prometheus' HTTP API (the scrape and dashboard tests share them)."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from local_stack import ensure_prometheus, prometheus
from result_aggregator_service.config import Settings
from result_aggregator_service.tests.processes import stop
from tests.conftest import API_HEADERS, LOG_DIR, free_port, spawn, wait_for
from tests.kafka_groups import position_group_at_end

OBSERVED_GROUP = "result_aggregator_observability"


class PromQLError(AssertionError):
    """Prometheus refused the expression (invalid PromQL) or failed to evaluate it."""


@dataclass(frozen=True)
class ObservedRoles:
    prometheus: httpx.AsyncClient
    api: httpx.AsyncClient

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `expr` evaluates to now."""
        answer = (await self.prometheus.get("/api/v1/query", params={"query": expr})).json()
        if answer.get("status") != "success":
            raise PromQLError(f"{expr!r}: {answer.get('errorType')}: {answer.get('error')}")
        data = answer["data"]
        return [{"metric": {}, "value": data["result"]}] if data["resultType"] == "scalar" else data["result"]


def finite(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples holding a number (a ratio of idle rates is NaN: no data in effect)."""
    return [s for s in samples if not math.isnan(float(s["value"][1]))]


@pytest.fixture(scope="module")
async def observed_roles(settings: Settings) -> AsyncIterator[ObservedRoles]:
    prometheus_url = ensure_prometheus()
    worker_port, api_port = free_port(), free_port()
    group = f"{OBSERVED_GROUP}-{uuid.uuid4().hex[:8]}"  # from the topics' end: no other test's backlog
    await position_group_at_end(settings.kafka_bootstrap_servers, group)
    common = {"RESULT_AGGREGATOR_LOG_FORMAT": "console"}
    worker = spawn(
        "result_aggregator_service.entrypoints.worker",
        {
            **common,
            "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
            "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(worker_port),
        },
        "observed-worker.log",
    )
    api = spawn(
        "result_aggregator_service.entrypoints.api",
        {
            **common,
            "RESULT_AGGREGATOR_HTTP_PORT": str(api_port),
            "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_HEADERS["X-Internal-API-Key"],
        },
        "observed-api.log",
    )
    prometheus.write_targets("worker", [f"127.0.0.1:{worker_port}"], scrape_interval="1s")
    prometheus.write_targets("api", [f"127.0.0.1:{api_port}"], scrape_interval="1s")
    try:
        async with (
            httpx.AsyncClient(base_url=prometheus_url, timeout=10) as prometheus_client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=API_HEADERS, timeout=10) as api_client,
        ):

            async def healthy() -> bool:
                if api.poll() is not None or worker.poll() is not None:
                    raise AssertionError(f"a role exited; see {LOG_DIR}/observed-*.log")
                try:
                    return (await api_client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, within=60, what="the API's /healthz")
            yield ObservedRoles(prometheus_client, api_client)
    finally:
        for role in prometheus.ROLES:  # back to the addresses `scripts/run.sh` serves on
            prometheus.write_targets(role, [prometheus.DEFAULT_TARGETS[role]])
        stop(worker)
        stop(api)
