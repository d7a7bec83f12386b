"""`/healthz`: PostgreSQL, Redis and Kafka checked side by side, each with its latency.

The service can answer while PostgreSQL answers (Redis only speeds it up; Kafka feeds the worker), so
only PostgreSQL decides between 200 and 503. The answer (unauthenticated) says each dependency's state
and latency, never the error's text (it can name users, hosts and addresses): that goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from time import perf_counter

import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from result_aggregator_service.api_models import DependencyHealth, HealthResponse

CHECK_TIMEOUT_SECONDS = 2.0

log = structlog.get_logger(__name__)


async def check_health(
    engine: AsyncEngine, redis: Redis, kafka_bootstrap_servers: str, database_circuit: str
) -> HealthResponse:
    database, cache, kafka = await asyncio.gather(
        _timed("database", _ping_database(engine)),
        _timed("redis", redis.ping()),
        _timed("kafka", _reach_kafka(kafka_bootstrap_servers)),
    )
    if database.status == "error":
        status = "unavailable"
    elif "error" in (cache.status, kafka.status):
        status = "degraded"
    else:
        status = "ok"
    checks = {"database": database, "redis": cache, "kafka": kafka}
    return HealthResponse(status=status, checks=checks, database_circuit=database_circuit)


async def _timed(dependency: str, check: Awaitable[object]) -> DependencyHealth:
    started = perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check
    except Exception as error:
        detail = str(error) or ("timed out" if isinstance(error, TimeoutError) else "failed")
        log.warning("health_check_failed", dependency=dependency, error_type=type(error).__name__, error=detail)
        return DependencyHealth(status="error", latency_ms=_ms_since(started))
    return DependencyHealth(status="ok", latency_ms=_ms_since(started))


async def _ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _reach_kafka(bootstrap_servers: str) -> None:
    """A TCP connect to the first bootstrap server that accepts one (no Kafka client needed)."""
    failures: list[str] = []
    for server in filter(None, (part.strip() for part in bootstrap_servers.split(","))):
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
        except (OSError, ValueError) as error:
            failures.append(f"{server}: {error}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise ConnectionError("; ".join(failures) or "no bootstrap servers configured")


def _ms_since(started: float) -> float:
    return round((perf_counter() - started) * 1000, 3)
