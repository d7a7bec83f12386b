"""The local stack's Prometheus scrapes both roles, and every dashboard panel's expression is valid PromQL
that returns data after a short load: real Kafka → worker process, API process, Prometheus."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from common_core import topics
from result_aggregator_service.entrypoints.routes import BATCH_STATUS_ROUTE
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.scenarios import lifecycle
from tests.conftest import publish, wait_for
from tests.observed_roles import ObservedRoles, PromQLError, finite, observed_roles

pytestmark = pytest.mark.infra
__all__ = ["observed_roles"]  # the fixture, used by name

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "result-aggregator.json"
# Grafana's variables, as Grafana would set them for a short time range at a 1 s scrape interval
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m"}


async def _load(roles: ObservedRoles, producer: AIOKafkaProducer) -> str:
    """A whole batch lifecycle, one undecodable record, and reads: misses, hits, a 404, a user page."""
    batch_id = samples.new_id("batch-")
    for event in lifecycle(batch_id, [samples.new_id("essay-") for _ in range(3)], user_id="teacher-observed"):
        await publish(producer, event)
    await producer.send_and_wait(topics.CONSUMED_TOPICS[0], b"{not json", key=b"observed")

    async def shown() -> bool:
        return (await roles.api.get(f"/internal/v1/batches/{batch_id}/status")).status_code == 200

    await wait_for(shown, what="the API to show the batch")
    for _ in range(5):
        assert (await roles.api.get(f"/internal/v1/batches/{batch_id}/status")).status_code == 200
    assert (await roles.api.get(f"/internal/v1/batches/{samples.new_id('absent-')}/status")).status_code == 404
    assert (await roles.api.get("/internal/v1/batches/user/teacher-observed")).status_code == 200
    return batch_id


async def _keep_busy(roles: ObservedRoles, producer: AIOKafkaProducer, batch_id: str) -> None:
    """A little more of each kind of work, so that rates over the last minute are not all zero."""
    await publish(producer, samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")]))
    for _ in range(2):
        await roles.api.get(f"/internal/v1/batches/{batch_id}/status")


@pytest.fixture(scope="module")
async def loaded(observed_roles: ObservedRoles, kafka_producer: AIOKafkaProducer) -> tuple[ObservedRoles, str]:
    return observed_roles, await _load(observed_roles, kafka_producer)


def _until_present(roles: ObservedRoles, expr: str) -> Callable[[], Awaitable[bool]]:
    async def present() -> bool:
        return bool(finite(await roles.query(expr)))

    return present


async def test_prometheus_scrapes_the_ras_series_of_both_roles(loaded: tuple[ObservedRoles, str]) -> None:
    roles, _ = loaded
    applied = 'ras_events_processed_total{job="result-aggregator-worker", outcome="success"}'
    served = f'ras_http_requests_total{{job="result-aggregator-api", route="{BATCH_STATUS_ROUTE}", status="200"}}'
    parked = 'ras_parked_events_total{job="result-aggregator-worker", reason="undecodable"}'
    for expr in (applied, served, parked):
        await wait_for(_until_present(roles, expr), within=60, what=f"Prometheus to hold {expr}")
    jobs = {s["metric"]["job"] for s in await roles.query('count by (job) ({__name__=~"ras_.+"})')}
    assert jobs == {"result-aggregator-worker", "result-aggregator-api"}


def _panel_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert found, f"no panel expressions in {DASHBOARD}"
    return found


def _as_grafana_sends(expr: str) -> str:
    text = expr
    for variable, value in GRAFANA_VARIABLES.items():
        text = text.replace(variable, value)
    assert not re.search(r"\$\w+", text), f"a Grafana variable the test does not set in {expr!r}"
    return text


async def test_every_dashboard_panel_returns_data(
    loaded: tuple[ObservedRoles, str], kafka_producer: AIOKafkaProducer
) -> None:
    roles, batch_id = loaded
    missing: dict[str, str] = {}

    async def all_present() -> bool:
        await _keep_busy(roles, kafka_producer, batch_id)
        missing.clear()
        for title, expr in _panel_expressions():
            try:
                if not finite(await roles.query(_as_grafana_sends(expr))):
                    missing[title] = expr
            except PromQLError as error:
                raise AssertionError(f"panel {title!r} is not valid PromQL: {error}") from error
        return not missing

    try:
        # recording rules run every 15 s (the config's evaluation interval); scrapes every second
        await wait_for(all_present, within=90, what="every panel to return data")
    except AssertionError as error:
        raise AssertionError(f"{error}; panels without data: {json.dumps(missing, indent=1)}") from error


async def test_an_invalid_expression_is_reported_as_such(observed_roles: ObservedRoles) -> None:
    with pytest.raises(PromQLError, match="bad_data"):
        await observed_roles.query("sum by (topic (ras_consumer_lag)")
