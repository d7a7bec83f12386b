"""Per-request correlation ids (accepted or generated, echoed, in every log line) and request metrics
labelled by route template, method and status."""

from __future__ import annotations

import re
import uuid
from time import perf_counter

import structlog
from dishka import AsyncContainer
from quart import Quart, Response, g, request

from huleedu_service_libs.spans import annotate_current_span
from result_aggregator_service.metrics import ServiceMetrics

CORRELATION_HEADER = "X-Correlation-ID"
UNMATCHED_ROUTE = "<unmatched>"
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._:\-]")

log = structlog.get_logger(__name__)


def install_request_observability(app: Quart, container: AsyncContainer) -> None:
    """Register the hooks; call it before any other `before_request` so that even rejected requests
    carry a correlation id."""

    @app.before_request
    async def bind_correlation_id() -> None:
        g.started = perf_counter()
        # the caller's id, kept to the characters and length safe in a header and a log line
        offered = _UNSAFE_ID_CHARACTERS.sub("", request.headers.get(CORRELATION_HEADER, ""))[:128]
        g.correlation_id = offered or str(uuid.uuid4())
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=g.correlation_id)
        annotate_current_span(correlation_id=g.correlation_id)

    @app.after_request
    async def echo_and_count(response: Response) -> Response:
        correlation_id = getattr(g, "correlation_id", None) or str(uuid.uuid4())
        response.headers[CORRELATION_HEADER] = correlation_id
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        status = str(response.status_code)
        metrics = await container.get(ServiceMetrics)
        metrics.http_requests.labels(request.method, route, status).inc()
        elapsed = perf_counter() - getattr(g, "started", perf_counter())
        metrics.http_latency.labels(request.method, route, status).observe(elapsed)
        if response.status_code >= 500:
            log.warning("request_failed", method=request.method, route=route, status=response.status_code)
        return response

    @app.teardown_request
    async def unbind(_: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()
