"""Where a Docker engine answers, testcontainers provide Kafka, PostgreSQL and Redis instead of the
local stack (the same settings, the same topics). Cannot run on machines without Docker."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from common_core.topics import CONSUMED_TOPICS, PRODUCED_TOPICS
from local_stack.kafka import create_topics

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # testcontainers' KRaft support is written for the cp images
POSTGRES_IMAGE = "postgres:15"
REDIS_IMAGE = "redis:7"


def docker_engine_available() -> bool:
    """A Docker client that reaches an engine (`docker --version` alone proves nothing)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def containers() -> Iterator[dict[str, str]]:
    """Start the three containers, create the service's topics, yield the three settings; stop them after."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    kafka: Any = KafkaContainer(KAFKA_IMAGE).with_kraft()
    postgres: Any = PostgresContainer(
        POSTGRES_IMAGE, username="result_aggregator", password="result_aggregator", dbname="result_aggregator"
    )
    redis: Any = RedisContainer(REDIS_IMAGE)
    with kafka, postgres, redis:
        bootstrap = kafka.get_bootstrap_server()
        if not asyncio.run(create_topics(bootstrap, (*CONSUMED_TOPICS, *PRODUCED_TOPICS))):
            raise RuntimeError("could not create the service's topics in the Kafka container")
        yield {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": postgres.get_connection_url(driver="asyncpg"),
            "REDIS_URL": f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
        }
