"""Per-request correlation ids (accepted or generated, echoed, in every log line) and request metrics
labelled by method, route template and status — none of them a value the client chooses: a method
outside the standard set is counted as `other`, a path no route matches as `<unmatched>`."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from time import perf_counter

import structlog
from dishka import AsyncContainer
from quart import Quart, Response, g, request

from huleedu_service_libs.spans import annotate_current_span
from result_aggregator_service.metrics import ServiceMetrics

CORRELATION_HEADER = "X-Correlation-ID"
UNMATCHED_ROUTE = "<unmatched>"
OTHER_METHOD = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._:\-]")

log = structlog.get_logger(__name__)


def new_correlation_id() -> str:
    """A random UUID (version 4 form) from the process's PRNG: a correlation id need not be
    unpredictable, and uuid4() asks the kernel for 16 bytes on every request."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def correlation_id_from(offered: str | None) -> str:
    """The caller's id, kept to the characters and length safe in a header and a log line; else a new one."""
    return (offered and _UNSAFE_ID_CHARACTERS.sub("", offered)[:128]) or new_correlation_id()


class RequestMetrics:
    """The request counter and latency histogram, each labelled series bound once (labels() costs a lock
    and a dict lookup per call)."""

    def __init__(self, container: AsyncContainer) -> None:
        self._container = container
        self._series: dict[tuple[str, str, int], tuple[Callable[[], None], Callable[[float], None]]] = {}

    async def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        found = self._series.get((method, route, status))
        if found is None:
            metrics = await self._container.get(ServiceMetrics)
            labels = (method, route, str(status))
            found = (metrics.http_requests.labels(*labels).inc, metrics.http_latency.labels(*labels).observe)
            self._series[method, route, status] = found
        count, observe = found
        count()
        observe(seconds)


def install_request_observability(app: Quart, container: AsyncContainer) -> None:
    """Register the hooks; call it before any other `before_request` so that even rejected requests
    carry a correlation id."""
    observed = RequestMetrics(container)

    @app.before_request
    async def bind_correlation_id() -> None:
        g.started = perf_counter()
        g.correlation_id = correlation_id_from(request.headers.get(CORRELATION_HEADER))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=g.correlation_id)
        annotate_current_span(correlation_id=g.correlation_id)

    @app.after_request
    async def echo_and_count(response: Response) -> Response:
        correlation_id = getattr(g, "correlation_id", None) or new_correlation_id()
        response.headers[CORRELATION_HEADER] = correlation_id
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        await observed.observe(
            method, route, response.status_code, perf_counter() - getattr(g, "started", perf_counter())
        )
        if response.status_code >= 500:
            log.warning("request_failed", method=method, route=route, status=response.status_code)
        return response
