"""API role: the internal query API (Quart) served by uvicorn with `settings.http_workers` processes.

Run: `python -m result_aggregator_service.entrypoints.api`. OpenAPI at `/openapi.json`, docs at `/docs`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import uvicorn
from dishka import AsyncContainer, Provider
from quart import Quart, g
from quart_schema import APIKeySecurityScheme, Info, QuartSchema

from huleedu_service_libs.logging import configure_logging
from huleedu_service_libs.tracing import configure_tracing, traced_asgi
from result_aggregator_service.config import ConfigurationError, Settings
from result_aggregator_service.entrypoints.auth import API_KEY_HEADER, SERVICE_ID_HEADER, service_auth
from result_aggregator_service.entrypoints.circuit_breaker import DatabaseCircuitProvider
from result_aggregator_service.entrypoints.docs_assets import serve_docs_assets
from result_aggregator_service.entrypoints.fast_status import CachedStatusFastPath
from result_aggregator_service.entrypoints.http_errors import register_error_handlers
from result_aggregator_service.entrypoints.live_routes import EventStreamOpenAPI, live_routes
from result_aggregator_service.entrypoints.observability import install_request_observability
from result_aggregator_service.entrypoints.routes import routes
from result_aggregator_service.live_changes import ChangeFeed
from result_aggregator_service.metrics import MULTIPROCESS_DIR_VARIABLE
from result_aggregator_service.providers import make_container

SERVICE_NAME = "result_aggregator_api"


def api_container(settings: Settings, *extra: Provider) -> AsyncContainer:
    """The API's container: the service's, `extra` (a test's read side), then the database circuit that
    guards the read model's queries (the routes need APP-scoped objects only)."""
    return make_container(settings, *extra, DatabaseCircuitProvider())


def create_app(settings: Settings, container: AsyncContainer | None = None) -> Quart:
    """The Quart app. A `container` passed in must come from `api_container` and is closed by its
    owner; without one the app builds its own and closes it when it stops serving."""
    owned = container is None
    container = container if container is not None else api_container(settings)
    app = Quart(__name__)
    QuartSchema(
        app,
        info=Info(title="Result Aggregator Service: internal query API", version="1"),
        security_schemes={
            "InternalApiKey": APIKeySecurityScheme(in_="header", name=API_KEY_HEADER),
            "ServiceId": APIKeySecurityScheme(in_="header", name=SERVICE_ID_HEADER),
        },
        redoc_ui_path=None,  # /docs only: its assets are served by the app itself (docs_assets.py)
        scalar_ui_path=None,
        openapi_provider_class=EventStreamOpenAPI,
    )
    serve_docs_assets(app)
    # hook order: correlation id first (every answer carries it), then auth, then the container
    install_request_observability(app, container)
    app.before_request(service_auth(settings))
    app.before_request(functools.partial(_use_container, container))
    register_error_handlers(app)
    app.register_blueprint(routes)
    app.register_blueprint(live_routes)
    app.before_serving(functools.partial(container.get, ChangeFeed))  # subscribed before the first request
    if owned:
        app.after_serving(container.close)
    fast = CachedStatusFastPath(app.asgi_app, container, settings)  # a local hit skips Quart (fast_status.py)
    app.asgi_app = traced_asgi(fast)  # type: ignore[method-assign]  # a span per request when tracing is on
    return app


async def _use_container(container: AsyncContainer) -> None:
    """What quart-dishka's `@inject` resolves from. The routes need only APP-scoped objects, so no
    request scope is opened per request (quart-dishka's middleware would open and close one)."""
    g.dishka_container = container


def app_from_env() -> Quart:
    """What each server worker process loads (uvicorn's factory)."""
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level, settings.log_format)
    configure_tracing(SERVICE_NAME, settings.otlp_endpoint)
    app = create_app(settings)
    app.before_serving(_freeze_start_up_heap)
    return app


async def _freeze_start_up_heap() -> None:
    """What start-up built (the modules, the app, the change feed) lives as long as the process: no full
    collection walks it again. Unfrozen, a full collection of a loaded API process took 99-121 ms
    (gc callbacks), and the requests it held up made the freshness bench's p99. Start-up's garbage is
    collected first, not frozen with it."""
    gc.collect()
    gc.freeze()


def main() -> None:
    """Serve with uvicorn: measured against hypercorn on this API (bench/api_latency.py), it answered
    cached reads at 1.28x the rate with a p99 of 18 ms instead of 81 ms."""
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level, settings.log_format)
    try:
        settings.api_key()
    except ConfigurationError as error:
        raise SystemExit(f"result_aggregator API cannot start: {error}") from None
    with _shared_metrics_if(settings.http_workers > 1):
        _serve(settings)


def _serve(settings: Settings) -> None:
    uvicorn.run("result_aggregator_service.entrypoints.api:app_from_env", **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves an app factory here (bench/api_latency.py serves its bare baseline the same way)."""
    return {
        "factory": True,
        "host": settings.http_host,
        "port": settings.http_port,
        "workers": settings.http_workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,  # keep the service's JSON logging
        "access_log": False,  # request metrics and error logs cover it; access lines would double the volume
        "timeout_graceful_shutdown": 10,
        # a worker process must answer the supervisor's ping this soon, counted from its spawn: 5 s (the
        # default) is less than its imports take on a busy machine, and it was killed and respawned for ever
        "timeout_worker_healthcheck": 60,
    }


@contextlib.contextmanager
def _shared_metrics_if(several_processes: bool) -> Iterator[None]:
    """Several worker processes write their metrics to one fresh folder that each one's /metrics reads
    (prometheus-client's multiprocess mode); the workers inherit the variable, spawned after it is set."""
    if not several_processes:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ras-metrics-") as folder:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = folder
        yield


if __name__ == "__main__":
    main()
