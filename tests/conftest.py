"""End-to-end fixtures: the worker and the API as real processes, a producer on the real broker.

The worker reaches PostgreSQL and Redis through proxies the tests can cut, so an outage is real without
stopping the shared servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from common_core.topics import CONSUMED_TOPICS
from result_aggregator_service.config import Settings
from result_aggregator_service.tests.processes import stop
from tests.kafka_groups import position_group_at_end
from tests.tcp_proxy import TcpProxy

UNMAPPED_TOPIC = "huleedu.e2e.unmapped.v1"
API_HEADERS = {"X-Internal-API-Key": "e2e-key", "X-Service-ID": "bff-teacher-service"}
LOG_DIR = Path(__file__).resolve().parents[1] / ".local-stack" / "e2e-logs"
T = TypeVar("T")


async def wait_for(probe: Callable[[], Awaitable[T | None]], within: float = 60.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(module: str, env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / log_name).open("wb")
    return subprocess.Popen([sys.executable, "-m", module], env={**os.environ, **env}, stdout=log, stderr=log)


def _proxy_to(url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()
    yield proxy
    proxy.cut()


@pytest.fixture(scope="session")
def postgres_proxy(settings: Settings) -> Iterator[TcpProxy]:
    yield from _proxy_to(settings.database_url)


@pytest.fixture(scope="session")
def redis_proxy(settings: Settings) -> Iterator[TcpProxy]:
    yield from _proxy_to(settings.redis_url)


def _through(proxy: TcpProxy, url: str) -> str:
    """`url` with its host and port replaced by the proxy's (credentials and path kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))


@pytest.fixture(scope="session")
async def kafka_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(UNMAPPED_TOPIC, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="module")
async def worker_process(
    settings: Settings, postgres_proxy: TcpProxy, redis_proxy: TcpProxy
) -> AsyncIterator[subprocess.Popen[bytes]]:
    # a new group from the topics' end: what other tests (the fault suite) left on them is not this worker's
    group = f"result_aggregator_e2e-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(settings.kafka_bootstrap_servers, group)
    env = {
        "DATABASE_URL": _through(postgres_proxy, settings.database_url),
        "REDIS_URL": _through(redis_proxy, settings.redis_url),
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_SUBSCRIBED_TOPICS": json.dumps([*CONSUMED_TOPICS, UNMAPPED_TOPIC]),
        "RESULT_AGGREGATOR_MICRO_BATCH_MAX_WAIT_SECONDS": "0.05",
        "RESULT_AGGREGATOR_RETRY_MAX_SECONDS": "0.5",
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(free_port()),
        "RESULT_AGGREGATOR_LOG_JSON": "false",
    }
    process = spawn("result_aggregator_service.entrypoints.worker", env, "worker.log")
    yield process
    stop(process)


@pytest.fixture(scope="session")
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    env = {
        "RESULT_AGGREGATOR_HTTP_PORT": str(port),
        "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_HEADERS["X-Internal-API-Key"],
        "RESULT_AGGREGATOR_LOG_JSON": "false",
    }
    process = spawn("result_aggregator_service.entrypoints.api", env, "api.log")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=API_HEADERS, timeout=10) as client:

        async def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the API exited with {process.returncode}; see {LOG_DIR / 'api.log'}")
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(healthy, within=60, what="the API's /healthz")
        yield client
    stop(process)


async def publish(producer: AIOKafkaProducer, sample: dict[str, Any], *, topic: str | None = None) -> None:
    key = str(sample["data"].get("batch_id") or sample["data"].get("entity_id")).encode()
    await producer.send_and_wait(topic or sample["event_type"], json.dumps(sample).encode(), key=key)
