"""Fixtures of the API tests (a pytest plugin: the API test modules list it in `pytest_plugins`).

Builds on the root conftest's `settings`. The read model is written by the real write side
(`process_batch` with the PostgreSQL unit of work and the Redis change sink), never by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from dishka import AsyncContainer
from pydantic import SecretStr
from quart import Quart
from quart.typing import TestClientProtocol

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import api_container, create_app
from result_aggregator_service.tests.integration.api_support import API_KEY, unused_port
from result_aggregator_service.tests.processes import stop


@pytest.fixture(scope="session")
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"internal_api_key": SecretStr(API_KEY)})


@pytest.fixture(scope="session")
async def api_services(api_settings: Settings) -> AsyncIterator[AsyncContainer]:
    """One container for the shared app and for writing test data (the same engine and Redis)."""
    container = api_container(api_settings)
    yield container
    await container.close()


@pytest.fixture(scope="session")
async def api_app(api_settings: Settings, api_services: AsyncContainer) -> AsyncIterator[Quart]:
    app = create_app(api_settings, api_services)
    async with app.test_app():
        yield app


@pytest.fixture
def client(api_app: Quart) -> TestClientProtocol:
    return api_app.test_client()


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], deadline_seconds: float = 120.0) -> None:
    # 120 s: two worker processes each import the service; on a busy shared machine that took 54 s
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not become healthy at {url} within {deadline_seconds} s")


@pytest.fixture(scope="session")
def served_api(api_settings: Settings) -> Iterator[str]:
    """The API as it runs in production: `python -m ...entrypoints.api` (uvicorn, two worker processes)."""
    port = unused_port()
    env = {
        **os.environ,
        "DATABASE_URL": api_settings.database_url,
        "REDIS_URL": api_settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": api_settings.kafka_bootstrap_servers,
        "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_KEY,
        "RESULT_AGGREGATOR_HTTP_HOST": "127.0.0.1",
        "RESULT_AGGREGATOR_HTTP_PORT": str(port),
        "RESULT_AGGREGATOR_HTTP_WORKERS": "2",
        "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
        # schemathesis sends any wait_for_event: keep its reads quick (longer waits are a documented 400)
        "RESULT_AGGREGATOR_EVENT_WAIT_DEFAULT_SECONDS": "0.05",
        "RESULT_AGGREGATOR_EVENT_WAIT_MAX_SECONDS": "0.2",
    }
    process = subprocess.Popen([sys.executable, "-m", "result_aggregator_service.entrypoints.api"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process)
        yield url
    finally:
        stop(process, grace_seconds=15)
