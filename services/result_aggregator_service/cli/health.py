"""`ras health`: is the service up? The API's /healthz, the worker's metrics endpoint, and with `--direct`
PostgreSQL, Redis and Kafka checked from here (the same checks as /healthz). Exit 0 when every check
is ok, else 1."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Annotated

import typer

from result_aggregator_service.cli.output import FAILED, JsonFlag, emit_json, run, stdout, table
from result_aggregator_service.config import Settings

HTTP_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, degraded, unavailable or error
    latency_ms: float | None
    detail: str = ""


def health(
    api_url: Annotated[str | None, typer.Option(help="the API's base URL (default: from the settings)")] = None,
    worker_url: Annotated[
        str | None, typer.Option(help="the worker's metrics URL (default: from the settings)")
    ] = None,
    direct: Annotated[bool, typer.Option("--direct", help="also check PostgreSQL, Redis and Kafka from here")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Check the API, the worker and (with --direct) the dependencies; exit 1 unless all are ok."""
    settings = Settings()
    host = settings.http_host if settings.http_host not in {"", "0.0.0.0", "::"} else "127.0.0.1"
    api_url = (api_url or f"http://{host}:{settings.http_port}").rstrip("/")
    worker_url = worker_url or f"http://{host}:{settings.worker_metrics_port}/metrics"
    checks = run(_checks(settings, api_url, worker_url, direct))
    if as_json:
        emit_json({"healthy": all(c.status == "ok" for c in checks), "checks": [asdict(c) for c in checks]})
    else:
        rows = [(c.name, c.status, c.latency_ms, c.detail) for c in checks]
        stdout.print(table(None, ("check", "status", "latency ms", "detail"), rows))
    if any(check.status != "ok" for check in checks):
        raise typer.Exit(FAILED)


async def _checks(settings: Settings, api_url: str, worker_url: str, direct: bool) -> list[Check]:
    checks = list(await asyncio.gather(_api(f"{api_url}/healthz"), _worker(worker_url)))
    if direct:
        checks += await _dependencies(settings)
    return checks


async def _api(url: str) -> Check:
    started = perf_counter()
    try:
        status, body = await asyncio.to_thread(_get, url)
        answer = json.loads(body)
        parts = ", ".join(f"{name} {check['status']}" for name, check in answer.get("checks", {}).items())
        return Check("api", str(answer.get("status", f"HTTP {status}")), _ms(started), f"{url}: {parts}")
    except (OSError, ValueError) as error:
        return Check("api", "error", _ms(started), f"{url}: {_reason(error)}")


async def _worker(url: str) -> Check:
    started = perf_counter()
    try:
        _, body = await asyncio.to_thread(_get, url)
    except OSError as error:
        return Check("worker", "error", _ms(started), f"{url}: {_reason(error)}")
    if b"ras_" not in body:
        return Check("worker", "error", _ms(started), f"{url}: answers, but without the service's ras_* metrics")
    return Check("worker", "ok", _ms(started), f"{url}: metrics served")


async def _dependencies(settings: Settings) -> list[Check]:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine

    from result_aggregator_service.entrypoints.health import check_health
    from result_aggregator_service.providers import make_container

    container = make_container(settings)
    try:
        engine, redis = await container.get(AsyncEngine), await container.get(Redis)
        report = await check_health(engine, redis, settings.kafka_bootstrap_servers, database_circuit="closed")
    finally:
        await container.close()
    # the reason of a failure is in the log (health_check_failed), on stderr
    return [Check(name, c.status, c.latency_ms, "") for name, c in report.checks.items()]


def _get(url: str) -> tuple[int, bytes]:
    """A GET that answers 503 too (a /healthz saying `unavailable` is an answer, not a transport error)."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 503:
            return 503, error.read()
        raise


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _ms(started: float) -> float:
    return round((perf_counter() - started) * 1000, 1)
