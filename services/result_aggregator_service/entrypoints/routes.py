"""The API's routes: the two internal queries (cached, with ETags), `/healthz` and `/metrics`.

Decorator order matters: the route, then quart-schema's decorators, then `@inject` directly above the
function (otherwise the OpenAPI document loses its schemas).
"""

from __future__ import annotations

import functools
import hashlib
import re

from dishka import FromDishka
from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, request
from quart_dishka import inject
from quart_schema import document_response, hide, security_scheme, validate_querystring
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from werkzeug.http import unquote_etag

from result_aggregator_service import views
from result_aggregator_service.adapters.response_cache import batch_key, user_key
from result_aggregator_service.api_models import (
    BatchStatusResponse,
    ErrorResponse,
    HealthResponse,
    UserBatchesQuery,
    UserBatchesResponse,
)
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.cached_reads import CachedReads, Rendered
from result_aggregator_service.entrypoints.circuit_breaker import DatabaseCircuit
from result_aggregator_service.entrypoints.health import check_health
from result_aggregator_service.entrypoints.http_errors import InternalError, NotFound
from result_aggregator_service.metrics import ServiceMetrics

BATCH_STATUS_ROUTE = "/internal/v1/batches/<batch_id>/status"
USER_BATCHES_ROUTE = "/internal/v1/batches/user/<user_id>"
SERVICE_AUTH: list[dict[str, list[str]]] = [{"InternalApiKey": [], "ServiceId": []}]
_ETAG_SAFE = re.compile(r"^[!#-~]{1,200}$")  # visible ASCII without the double quote

routes = Blueprint("result_aggregator", __name__)


@routes.get(BATCH_STATUS_ROUTE)
@security_scheme(SERVICE_AUTH)
@document_response(BatchStatusResponse, 200)
@document_response(ErrorResponse, 401)
@document_response(ErrorResponse, 403)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 503)
@inject
async def batch_status(batch_id: str, reads: FromDishka[CachedReads]) -> Response:
    """A batch's status with its essays; 404 unless the batch was registered."""
    load = functools.partial(_render_batch, batch_id=batch_id)
    rendered = await reads.get(BATCH_STATUS_ROUTE, batch_key(batch_id), "", load)
    if rendered is None:
        raise NotFound(f"batch {batch_id!r} is not registered")
    return _conditional(rendered)


@routes.get(USER_BATCHES_ROUTE)
@security_scheme(SERVICE_AUTH)
@validate_querystring(UserBatchesQuery)
@document_response(UserBatchesResponse, 200)
@document_response(ErrorResponse, 400)
@document_response(ErrorResponse, 401)
@document_response(ErrorResponse, 403)
@document_response(ErrorResponse, 503)
@inject
async def user_batches(user_id: str, query_args: UserBatchesQuery, reads: FromDishka[CachedReads]) -> Response:
    """One page of a user's batches, newest first; `status` filters on the internal BatchStatus."""
    page = f"{query_args.limit}:{query_args.offset}:{query_args.status or ''}"
    load = functools.partial(_render_page, user_id=user_id, query=query_args)
    rendered = await reads.get(USER_BATCHES_ROUTE, user_key(user_id), page, load)
    if rendered is None:  # cannot happen: a page always exists, if empty
        raise InternalError("no page rendered")
    return _conditional(rendered)


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


async def _render_batch(session: AsyncSession, batch_id: str) -> Rendered | None:
    found = await views.batch_status(session, batch_id)
    if found is None:
        return None
    response, version = found
    return Rendered(response.model_dump_json().encode(), batch_etag(batch_id, version))


async def _render_page(session: AsyncSession, user_id: str, query: UserBatchesQuery) -> Rendered:
    page = await views.user_batches(session, user_id, query.limit, query.offset, query.status)
    body = page.model_dump_json().encode()
    return Rendered(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def batch_etag(batch_id: str, version: int) -> str:
    """Weak, from the version the worker bumps on every committed change."""
    tag = batch_id if _ETAG_SAFE.match(batch_id) else hashlib.sha256(batch_id.encode()).hexdigest()[:16]
    return f'W/"{tag}-{version}"'


def _conditional(rendered: Rendered) -> Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    tag, _ = unquote_etag(rendered.etag)
    if tag is not None and request.if_none_match.contains_weak(tag):
        return Response(b"", status=304, headers=headers)
    return Response(rendered.body, status=200, mimetype="application/json", headers=headers)
