"""The demo producer's lifecycles, published to the real Kafka, are folded by a worker process into the
states the generator expects, and the demo prints URLs that answer."""

from __future__ import annotations

import functools
import io
import uuid
from typing import Any

import httpx
import pytest

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.demo import DemoPlan, run_demo
from result_aggregator_service.lifecycles import Lifecycle
from tests.conftest import wait_for

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("worker_process")]


def as_expected(body: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The API answer cut to the fields the generator predicts."""
    shown = {key: body[key] for key in expected if key != "essays"}
    shown["essays"] = [{key: essay[key] for key in expected["essays"][0]} for essay in body["essays"]]
    return shown


async def test_demo_lifecycles_fold_into_the_states_the_generator_expects(
    settings: Settings, api_client: httpx.AsyncClient
) -> None:
    users = tuple(f"demo-e2e-{uuid.uuid4().hex[:8]}" for _ in range(2))
    plan = DemoPlan(users=users, batches=5, rate=500, in_flight=3, out_of_order=0.5, duplicated=0.3)
    out = io.StringIO()
    report = await run_demo(settings, plan, out)
    assert len(report.finished) == 5 and report.events_sent > sum(len(lc.events) for lc in report.lifecycles)

    async def folded(lifecycle: Lifecycle) -> bool:
        response = await api_client.get(f"/internal/v1/batches/{lifecycle.batch_id}/status")
        return response.status_code == 200 and as_expected(response.json(), lifecycle.expected) == lifecycle.expected

    for lifecycle in report.lifecycles:
        await wait_for(functools.partial(folded, lifecycle), within=60, what=f"batch {lifecycle.batch_id} folded")

    listing = (await api_client.get(f"/internal/v1/batches/user/{users[0]}")).json()
    assert {b["batch_id"] for b in listing["batches"]} == {
        lc.batch_id for lc in report.lifecycles if lc.user_id == users[0]
    }
    first = report.lifecycles[0]
    assert f"/internal/v1/batches/{first.batch_id}/status" in out.getvalue()
    assert f"/internal/v1/batches/user/{first.user_id}" in out.getvalue()
