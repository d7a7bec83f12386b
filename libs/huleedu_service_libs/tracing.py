"""One tracing setup for every service (OpenTelemetry), like `logging.py` is for logs.

Off by default: only when an OTLP endpoint (or a test's exporter) is given does `configure_tracing`
install a tracer provider and instrument asyncpg (every statement, BEGIN and COMMIT included) and Redis;
without one, OpenTelemetry's API stays a no-op and the helpers of `spans.py` return at once.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter

from huleedu_service_libs.spans import tracing_on, turn_on


def configure_tracing(service_name: str, otlp_endpoint: str | None, exporter: SpanExporter | None = None) -> bool:
    """Install the tracer provider and the instrumentations; True when tracing is on. Spans go to
    `otlp_endpoint` (OTLP over HTTP, e.g. `http://collector:4318/v1/traces`), batched; a test passes an
    `exporter` instead (spans exported as they end)."""
    if not otlp_endpoint and exporter is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    turn_on()
    return True


def traced_asgi(app: Any) -> Any:
    """`app` wrapped in OpenTelemetry's ASGI middleware (a server span per request), when tracing is on."""
    if not tracing_on():
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app, excluded_urls="/metrics$,/healthz$")  # scrapes and probes
