"""Which trace an event continues: the envelope's metadata.traceparent, else the headers (pure logic)."""

from __future__ import annotations

import uuid

from opentelemetry import trace
from opentelemetry.context import Context

from huleedu_service_libs.spans import producer_context

BODY_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _ids(context: Context | None) -> tuple[str, str]:
    assert context is not None
    span_context = trace.get_current_span(context).get_span_context()
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


def test_the_body_traceparent_wins_over_the_headers() -> None:
    headers = [("traceparent", HEADER_TRACEPARENT.encode()), ("trace_id", b"1" * 32)]
    context = producer_context({"traceparent": BODY_TRACEPARENT}, headers)
    assert _ids(context) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_a_traceparent_header_serves_when_the_body_has_none() -> None:
    context = producer_context({"partition_key": None}, [("traceparent", HEADER_TRACEPARENT.encode())])
    assert _ids(context) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


def test_a_trace_id_header_alone_gives_its_trace_with_some_parent_span() -> None:
    trace_id = uuid.uuid4()
    context = producer_context(None, [("Trace_ID", str(trace_id).encode())])
    found_trace, found_span = _ids(context)
    assert found_trace == trace_id.hex and int(found_span, 16) != 0


def test_malformed_or_empty_contexts_give_none() -> None:
    bad_headers = [("traceparent", b"00-zz-yy-01"), ("trace_id", b"0" * 32)]
    assert producer_context({"traceparent": "garbage"}, bad_headers) is None
    assert producer_context({"traceparent": 42}, [("trace_id", b"not-hex")]) is None
    assert producer_context(None, []) is None
