"""The spans a service opens itself, through OpenTelemetry's API only (no SDK). Until
`tracing.configure_tracing` installs a provider, every helper returns at once (a shared null context).

- `batch_span(...)`: a consumer's micro-batch; its parent is the trace context its first record carries,
  and the database and Redis spans of the batch are its children.
- `event_span(...)`: one consumed event (the Kafka consume); its parent is the producer's context (the
  envelope's `metadata.traceparent`, else a `traceparent` or `trace_id` Kafka header), linked to the
  micro-batch span.
- `annotate_current_span(**attributes)`: e.g. a request's correlation id.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Headers = Sequence[tuple[str, bytes]]
Attributes = Mapping[str, str | int]
_TRACER_NAME = "huleedu_service_libs.spans"
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_propagator = TraceContextTextMapPropagator()
_NO_SPAN: AbstractContextManager[object] = nullcontext()
_state = {"on": False}  # set by tracing.configure_tracing: a dict lookup is all tracing costs when off


def tracing_on() -> bool:
    return _state["on"]


def turn_on() -> None:
    """Called by the setup once it has installed a tracer provider."""
    _state["on"] = True


def annotate_current_span(**attributes: str) -> None:
    if _state["on"]:
        trace.get_current_span().set_attributes(attributes)


def batch_span(name: str, size: int, records: Iterable[tuple[bytes, Headers]]) -> AbstractContextManager[object]:
    """A span around a micro-batch of `size` records (raw value and headers each), continuing the trace
    of its first record; only that one is read, and only when tracing is on. The database and Redis
    spans of the batch become its children."""
    if not _state["on"]:
        return _NO_SPAN
    value, headers = next(iter(records), (b"", ()))
    attributes: Attributes = {"messaging.system": "kafka", "messaging.batch.message_count": size}
    return trace.get_tracer(_TRACER_NAME).start_as_current_span(
        name, context=producer_context(_metadata_of(value), headers), kind=SpanKind.CONSUMER, attributes=attributes
    )


def event_span(
    topic: str, metadata: Mapping[str, Any] | None, headers: Headers, attributes: Callable[[], Attributes]
) -> AbstractContextManager[object]:
    """A span for one consumed event, child of the producer's span and linked to the current (micro-batch)
    span; an event without a trace context becomes a child of the current span instead. `attributes` is
    called only when tracing is on (the hot path pays nothing for them otherwise)."""
    if not _state["on"]:
        return _NO_SPAN
    current = trace.get_current_span().get_span_context()
    parent = producer_context(metadata, headers)
    links = [Link(current)] if parent is not None and current.is_valid else []
    every = {"messaging.system": "kafka", "messaging.destination.name": topic, **attributes()}
    return trace.get_tracer(_TRACER_NAME).start_as_current_span(
        f"{topic} process", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=every
    )


def producer_context(metadata: Mapping[str, Any] | None, headers: Headers) -> Context | None:
    """The producer's trace context: the body's `metadata.traceparent` wins over the headers (the body is
    authoritative); a `trace_id` header alone (32 hex digits, dashes allowed) continues that trace."""
    by_header = {key.lower(): value.decode("utf-8", "replace") for key, value in headers}
    for traceparent in ((metadata or {}).get("traceparent"), by_header.get("traceparent")):
        if isinstance(traceparent, str):
            context = _propagator.extract({"traceparent": traceparent})
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
    trace_id = by_header.get("trace_id", "").replace("-", "").lower()
    if _TRACE_ID.match(trace_id) and int(trace_id, 16):
        # no parent span id was sent: an invented one, so that the event's span joins the trace
        remote = SpanContext(int(trace_id, 16), random.getrandbits(64) or 1, True, TraceFlags(TraceFlags.SAMPLED))
        return trace.set_span_in_context(NonRecordingSpan(remote))
    return None


def _metadata_of(value: bytes) -> Mapping[str, Any] | None:
    try:
        metadata = json.loads(value).get("metadata")
    except (ValueError, AttributeError):
        return None
    return metadata if isinstance(metadata, dict) else None
