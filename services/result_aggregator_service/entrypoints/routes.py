"""The API's routes: the internal queries (cached, with ETags), `/healthz` and `/metrics`.

Decorator order matters: the route, then quart-schema's decorators, then `@inject` directly above the
function (otherwise the OpenAPI document loses its schemas).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from dishka import FromDishka
from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, request
from quart_dishka import inject
from quart_schema import document_headers, document_response, hide, security_scheme, validate_querystring
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.http import unquote_etag

from result_aggregator_service.api_models import (
    BatchStatusQuery,
    BatchStatusResponse,
    ErrorResponse,
    EssayDetailResponse,
    HealthResponse,
    UserBatchesQuery,
    UserBatchesResponse,
    WaitForEventHeaders,
)
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.circuit_breaker import DatabaseCircuit
from result_aggregator_service.entrypoints.health import check_health
from result_aggregator_service.live_changes import ChangeFeed
from result_aggregator_service.live_reads import wait_for_event
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.read_service import (
    BATCH_STATUS_ROUTE,
    ESSAY_ROUTE,
    USER_BATCHES_ROUTE,
    ReadService,
    Rendered,
)

__all__ = ["BATCH_STATUS_ROUTE", "ESSAY_ROUTE", "USER_BATCHES_ROUTE", "documented_errors", "routes"]

WAIT_FOR_EVENT_HEADER = "X-Wait-For-Event"
EVENT_OUTCOME_HEADER = "X-Event-Outcome"  # applied | parked | timeout: only on a read that waited
SERVICE_AUTH: list[dict[str, list[str]]] = [{"InternalApiKey": [], "ServiceId": []}]

routes = Blueprint("result_aggregator", __name__)
_View = TypeVar("_View", bound=Callable[..., Any])


def documented_errors(*statuses: int) -> Callable[[_View], _View]:
    """The JSON error body (`ErrorResponse`) in the OpenAPI document for each of these statuses."""

    def document(view: _View) -> _View:
        for status in reversed(statuses):  # as if stacked in this order, the first status on top
            view = document_response(ErrorResponse, status)(view)
        return view

    return document


@routes.get(BATCH_STATUS_ROUTE)
@security_scheme(SERVICE_AUTH)
@validate_querystring(BatchStatusQuery)
@document_headers(WaitForEventHeaders)
@document_response(BatchStatusResponse, 200)
@documented_errors(400, 401, 403, 404, 503)
@inject
async def batch_status(
    batch_id: str,
    query_args: BatchStatusQuery,
    reads: FromDishka[ReadService],
    feed: FromDishka[ChangeFeed],
    settings: FromDishka[Settings],
) -> Response:
    """A batch's status with its essays; 404 unless the batch was registered.

    Read-your-writes: with `wait_for_event` (or the `X-Wait-For-Event` header) the answer waits until the
    worker applied or parked that event (at most `wait_seconds`), so it includes the event; the
    `X-Event-Outcome` response header says `applied`, `parked` or `timeout` (then the answer is the
    current state). The body is the same as without it.
    """
    batch_id = storable("batch_id", batch_id)
    outcome = None
    if (event_id := _event_to_wait_for(query_args)) is not None:
        outcome = await wait_for_event(feed, reads, event_id, _wait_bound(query_args, settings))
    rendered = await reads.batch_status(batch_id)
    if rendered is None:
        raise NotFound(f"batch {batch_id!r} is not registered")
    response = _conditional(rendered)
    if outcome is not None:
        response.headers[EVENT_OUTCOME_HEADER] = outcome
    return response


@routes.get(ESSAY_ROUTE)
@security_scheme(SERVICE_AUTH)
@document_response(EssayDetailResponse, 200)
@documented_errors(400, 401, 403, 404, 503)
@inject
async def essay(batch_id: str, essay_id: str, reads: FromDishka[ReadService]) -> Response:
    """One essay with everything the read model keeps of it; 404 unless its batch was registered with it.
    The ETag carries the batch's version (a change to any of its essays changes it)."""
    rendered = await reads.essay(storable("batch_id", batch_id), storable("essay_id", essay_id))
    if rendered is None:
        raise NotFound(f"essay {essay_id!r} is not an essay of a registered batch {batch_id!r}")
    return _conditional(rendered)


@routes.get(USER_BATCHES_ROUTE)
@security_scheme(SERVICE_AUTH)
@validate_querystring(UserBatchesQuery)
@document_response(UserBatchesResponse, 200)
@documented_errors(400, 401, 403, 503)
@inject
async def user_batches(user_id: str, query_args: UserBatchesQuery, reads: FromDishka[ReadService]) -> Response:
    """One page of a user's batches, newest first; `status` filters on the internal BatchStatus."""
    return _conditional(await reads.user_batches(storable("user_id", user_id), query_args))


@routes.get("/healthz")
@document_response(HealthResponse, 200)
@document_response(HealthResponse, 503)
@inject
async def healthz(
    engine: FromDishka[AsyncEngine],
    redis: FromDishka[Redis],
    settings: FromDishka[Settings],
    service_metrics: FromDishka[ServiceMetrics],
    circuit: FromDishka[DatabaseCircuit],
) -> Response:
    """PostgreSQL, Redis and Kafka with their latency; 503 when PostgreSQL does not answer."""
    health = await _checked_health(engine, redis, settings, service_metrics, circuit)
    status = 503 if health.status == "unavailable" else 200
    return Response(health.model_dump_json(), status=status, mimetype="application/json")


@routes.get("/metrics")
@hide
@inject
async def metrics(
    engine: FromDishka[AsyncEngine],
    redis: FromDishka[Redis],
    settings: FromDishka[Settings],
    service_metrics: FromDishka[ServiceMetrics],
    circuit: FromDishka[DatabaseCircuit],
) -> Response:
    """Prometheus text format; each scrape checks the dependencies first (`ras_dependency_up`)."""
    await _checked_health(engine, redis, settings, service_metrics, circuit)
    return Response(service_metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


async def _checked_health(
    engine: AsyncEngine, redis: Redis, settings: Settings, service_metrics: ServiceMetrics, circuit: DatabaseCircuit
) -> HealthResponse:
    health = await check_health(engine, redis, settings.kafka_bootstrap_servers, circuit.state.value)
    service_metrics.observe_dependencies({name: check.status == "ok" for name, check in health.checks.items()})
    return health


def _event_to_wait_for(query: BatchStatusQuery) -> UUID | None:
    if query.wait_for_event is not None or WAIT_FOR_EVENT_HEADER not in request.headers:
        return query.wait_for_event
    try:
        return UUID(request.headers[WAIT_FOR_EVENT_HEADER])
    except ValueError:
        raise BadRequest(f"{WAIT_FOR_EVENT_HEADER}: must be an event id (a UUID)") from None


def _wait_bound(query: BatchStatusQuery, settings: Settings) -> float:
    """The caller's bound, clamped to the configured maximum (which the document cannot name)."""
    if query.wait_seconds is None:
        return settings.event_wait_default_seconds
    return min(query.wait_seconds, settings.event_wait_max_seconds)


def storable(name: str, value: str) -> str:
    """A path id PostgreSQL can compare: text there cannot hold a NUL character."""
    if "\x00" in value:
        raise BadRequest(f"{name}: must not contain a NUL character")
    return value


def _conditional(rendered: Rendered) -> Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if "If-None-Match" in request.headers:  # parsed only when sent
        tag, _ = unquote_etag(rendered.etag)
        if tag is not None and request.if_none_match.contains_weak(tag):
            return Response(b"", status=304, headers=headers)
    return Response(rendered.body, status=200, mimetype="application/json", headers=headers)
