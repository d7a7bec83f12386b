"""The API's hottest answer, a batch status this process holds a local copy of, sent before Quart sees
the request: Quart's per-request machinery (contexts, hooks, routing, response objects) cost more CPU
than the rest of such a read (bench/api_latency.py).

Only a plain hit takes this path: GET of the status route, no query string, no `If-None-Match`, no
read-your-writes header, an authorised caller, and a local copy of a registered batch
(`LocallyCachedResponses.local_batch`, which applies the worker's announcements first). Everything else,
a refusal included, goes to the app, so each error, 304 and miss has one implementation. The answer is
the one the route sends (body, ETag, Cache-Control, the echoed or new correlation id) and is counted in
the same request and cache metrics.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any, Final

from dishka import AsyncContainer

from result_aggregator_service.adapters.local_response_cache import LocallyCachedResponses
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.auth import API_KEY_HEADER, SERVICE_ID_HEADER, ServiceAuth
from result_aggregator_service.entrypoints.observability import CORRELATION_HEADER, RequestMetrics, correlation_id_from
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.read_service import BATCH_STATUS_ROUTE, ResponseCache, decode

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]  # Quart's asgi_app, typed with hypercorn's scope types

_STATUS_PATH: Final = re.compile(r"/internal/v1/batches/([^/\x00]+)/status")
_KEY: Final = API_KEY_HEADER.lower().encode()
_SERVICE: Final = SERVICE_ID_HEADER.lower().encode()
_CORRELATION: Final = CORRELATION_HEADER.lower().encode()
_PASS_TO_APP: Final = frozenset({b"if-none-match", b"x-wait-for-event"})


class CachedStatusFastPath:
    def __init__(self, app: ASGIApp, container: AsyncContainer, settings: Settings) -> None:
        self._app = app
        self._container = container
        self._auth = ServiceAuth(settings)
        self._metrics = RequestMetrics(container)
        self._local: LocallyCachedResponses | None = None
        self._count_hit: Callable[[], None] | None = None
        self._enabled = settings.api_local_cache_entries > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self._enabled and scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]):
            return await self._app(scope, receive, send)
        match = _STATUS_PATH.fullmatch(scope["path"])
        if match is None:
            return await self._app(scope, receive, send)
        started = perf_counter()
        headers = dict(scope["headers"])
        if not _PASS_TO_APP.isdisjoint(headers) or self._auth.refusal(
            headers.get(_KEY, b""), headers.get(_SERVICE, b"").decode("latin-1")
        ):
            return await self._app(scope, receive, send)
        local = self._local or await self._local_cache()
        stored = local.local_batch(match[1]) if local is not None else None
        rendered = decode(stored) if stored else None
        if rendered is None:  # no copy here, or a cached "not found": the app answers
            return await self._app(scope, receive, send)
        offered = headers.get(_CORRELATION)
        correlation_id = correlation_id_from(offered.decode("latin-1") if offered else None)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(rendered.body)).encode()),
                    (b"etag", rendered.etag.encode()),
                    (b"cache-control", b"no-cache"),
                    (_CORRELATION, correlation_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": rendered.body})
        assert self._count_hit is not None
        self._count_hit()
        await self._metrics.observe("GET", BATCH_STATUS_ROUTE, 200, perf_counter() - started)

    async def _local_cache(self) -> LocallyCachedResponses | None:
        """The process's local copies, when the container's response cache keeps them (else: off)."""
        cache = await self._container.get(ResponseCache)
        if not isinstance(cache, LocallyCachedResponses):
            self._enabled = False
            return None
        metrics = await self._container.get(ServiceMetrics)
        self._count_hit = metrics.cache_lookups.labels(BATCH_STATUS_ROUTE, "hit").inc
        self._local = cache
        return cache
