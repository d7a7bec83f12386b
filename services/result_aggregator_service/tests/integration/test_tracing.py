"""Traces, recorded by an in-memory exporter: an event's trace continues the producer's trace id through the
worker's micro-batch span to the PostgreSQL and Redis spans; the API's request spans carry the correlation
id. Real PostgreSQL and Redis; tracing is configured once for this test process."""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest
from dishka import AsyncContainer
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from huleedu_service_libs.tracing import configure_tracing
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.micro_batches import ingest_until_applied
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import record_of
from result_aggregator_service.tests.integration.api_support import API_KEY, AUTH, BATCH_STATUS, serving

ASYNCPG_SCOPE = "opentelemetry.instrumentation.asyncpg"
REDIS_SCOPE = "opentelemetry.instrumentation.redis"


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert configure_tracing("result_aggregator_test", None, exporter=exporter)
    yield exporter
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().uninstrument()
    exporter.shutdown()


def _in_trace(spans: Sequence[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    return [span for span in spans if span.context is not None and span.context.trace_id == int(trace_id, 16)]


def _named(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r} among {[s.name for s in spans]}"
    return found[0]


def _descends_from(span: ReadableSpan, ancestor: ReadableSpan, spans: Sequence[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    parent = span.parent
    while parent is not None:
        if ancestor.context is not None and parent.span_id == ancestor.context.span_id:
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


async def test_an_events_trace_continues_from_the_producer_through_the_batch_to_the_database(
    container: AsyncContainer, exported: InMemorySpanExporter
) -> None:
    trace_id, producer_span_id = secrets.token_hex(16), secrets.token_hex(8)
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    sample["metadata"]["traceparent"] = f"00-{trace_id}-{producer_span_id}-01"
    exported.clear()

    await ingest_until_applied(container, [record_of(sample)])

    spans = _in_trace(exported.get_finished_spans(), trace_id)
    event = _named(spans, f"{sample['event_type']} process")
    batch = _named(spans, "ras micro-batch")
    assert event.kind is SpanKind.CONSUMER and batch.kind is SpanKind.CONSUMER
    assert event.parent is not None and event.parent.span_id == int(producer_span_id, 16)
    assert batch.parent is not None and batch.parent.span_id == int(producer_span_id, 16)
    assert [link.context.span_id for link in event.links] == [batch.context.span_id if batch.context else None]
    assert event.attributes is not None
    assert event.attributes["correlation_id"] == sample["correlation_id"]
    assert event.attributes["messaging.message.id"] == sample["event_id"]
    database = [
        span for span in spans if span.instrumentation_scope and span.instrumentation_scope.name == ASYNCPG_SCOPE
    ]
    statements = " ".join(str((span.attributes or {}).get("db.statement", span.name)) for span in database)
    assert "INSERT" in statements.upper() and "COMMIT" in statements.upper()
    assert all(_descends_from(span, batch, spans) for span in database)
    cache = [span for span in spans if span.instrumentation_scope and span.instrumentation_scope.name == REDIS_SCOPE]
    assert cache and all(_descends_from(span, batch, spans) for span in cache)


async def test_a_trace_id_header_alone_continues_the_trace(
    container: AsyncContainer, exported: InMemorySpanExporter
) -> None:
    trace_id = secrets.token_hex(16)
    sample = samples.batch_registered(samples.new_id("batch-"), [samples.new_id("essay-")])
    sample["metadata"] = None
    record = record_of(sample)
    record = dataclasses.replace(record, headers=[*record.headers, ("trace_id", trace_id.encode())])
    exported.clear()

    await ingest_until_applied(container, [record])

    spans = _in_trace(exported.get_finished_spans(), trace_id)
    assert {f"{sample['event_type']} process", "ras micro-batch"} <= {span.name for span in spans}
    assert any(span.instrumentation_scope and span.instrumentation_scope.name == ASYNCPG_SCOPE for span in spans)


async def test_an_api_request_span_carries_the_correlation_id(
    settings: Settings, exported: InMemorySpanExporter
) -> None:
    exported.clear()
    async with serving(settings.model_copy(update={"internal_api_key": SecretStr(API_KEY)})) as client:
        answer = await client.get(
            BATCH_STATUS.format(samples.new_id("batch-")), headers={**AUTH, "X-Correlation-ID": "trace-me-42"}
        )
    assert answer.status_code == 404

    spans = exported.get_finished_spans()
    server = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(server) == 1 and server[0].attributes is not None
    assert server[0].attributes["correlation_id"] == "trace-me-42"
    database = [
        span for span in spans if span.instrumentation_scope and span.instrumentation_scope.name == ASYNCPG_SCOPE
    ]
    assert database and all(_descends_from(span, server[0], spans) for span in database)


def test_without_an_endpoint_tracing_stays_off_and_the_service_layer_loads_no_sdk() -> None:
    probe = (
        "import sys, json\n"
        "import result_aggregator_service.service_layer.ingest\n"
        "from huleedu_service_libs.spans import tracing_on\n"
        "sdk_loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk'))\n"
        "from huleedu_service_libs.tracing import configure_tracing\n"
        "print(json.dumps([sdk_loaded, configure_tracing('x', None), tracing_on()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == [[], False, False]
