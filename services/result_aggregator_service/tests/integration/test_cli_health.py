"""`ras health` against the served API, a real worker process and the real dependencies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from result_aggregator_service.config import Settings
from result_aggregator_service.tests.integration.api_support import unused_port
from result_aggregator_service.tests.integration.cli_support import json_of, ras
from result_aggregator_service.tests.processes import stop

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra
LOG = Path(__file__).resolve().parents[4] / ".local-stack" / "test-logs" / "health-worker.log"


@pytest.fixture(scope="module")
def worker_metrics_url(settings: Settings) -> Iterator[str]:
    """The worker role as deployed (its own consumer group, so it takes no partitions from other tests)."""
    port = unused_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RESULT_AGGREGATOR_CONSUMER_GROUP": f"ras-health-test-{uuid.uuid4().hex[:8]}",
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
        "RESULT_AGGREGATOR_LOG_FORMAT": "console",
    }
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "result_aggregator_service.entrypoints.worker"], env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 90
        while not _answers(url):
            assert process.poll() is None, f"the worker exited with {process.returncode}; see {LOG}"
            assert time.monotonic() < deadline, f"the worker's metrics did not answer within 90 s; see {LOG}"
            time.sleep(0.2)
        yield url
    finally:
        stop(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def test_everything_up_is_healthy_and_exits_0(served_api: str, worker_metrics_url: str) -> None:
    result = await ras("health", "--api-url", served_api, "--worker-url", worker_metrics_url, "--direct", "--json")
    assert result.exit_code == 0, result.output
    report = json_of(result)
    assert report["healthy"] is True
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert statuses == {"api": "ok", "worker": "ok", "database": "ok", "redis": "ok", "kafka": "ok"}
    api = next(check for check in report["checks"] if check["name"] == "api")
    assert "database ok" in api["detail"]

    table = await ras("health", "--api-url", served_api, "--worker-url", worker_metrics_url)
    assert table.exit_code == 0 and "worker" in table.stdout


async def test_an_api_or_worker_that_does_not_answer_is_reported_and_exits_1(served_api: str) -> None:
    nothing = f"http://127.0.0.1:{unused_port()}"
    result = await ras("health", "--api-url", served_api, "--worker-url", f"{nothing}/metrics", "--json")
    assert result.exit_code == 1
    checks = {check["name"]: check for check in json_of(result)["checks"]}
    assert checks["api"]["status"] == "ok"
    assert checks["worker"]["status"] == "error" and "Connection refused" in checks["worker"]["detail"]
    assert "Traceback" not in result.output


async def test_direct_checks_name_an_unreachable_redis(served_api: str, worker_metrics_url: str) -> None:
    result = await ras(
        "health", "--api-url", served_api, "--worker-url", worker_metrics_url, "--direct", "--json",
        env={"REDIS_URL": "redis://127.0.0.1:9/0"},
    )  # fmt: skip
    assert result.exit_code == 1
    statuses = {check["name"]: check["status"] for check in json_of(result)["checks"]}
    assert statuses == {"api": "ok", "worker": "ok", "database": "ok", "redis": "error", "kafka": "ok"}


async def test_health_reads_its_default_urls_from_the_settings(served_api: str) -> None:
    port = served_api.rsplit(":", 1)[1]
    result = await asyncio.wait_for(
        ras(
            "health", "--json", env={"RESULT_AGGREGATOR_HTTP_PORT": port, "RESULT_AGGREGATOR_WORKER_METRICS_PORT": "9"}
        ),
        timeout=30,
    )
    checks = {check["name"]: check for check in json_of(result)["checks"]}
    assert checks["api"]["status"] == "ok" and checks["api"]["detail"].startswith(f"{served_api}/healthz")
    assert checks["worker"]["detail"].startswith("http://127.0.0.1:9/metrics")
