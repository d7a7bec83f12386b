"""Hypothesis strategies of hostile Kafka records: random bytes; valid envelopes of every topic with one
field mutated (wrong types, NaN/Infinity, huge integers, NUL in strings, deep nesting, huge arrays), some
sent to another topic; random headers and keys."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from common_core.topics import CONSUMED_TOPICS
from result_aggregator_service.tests.contract import sample_envelopes as samples

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class FuzzedRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    kind: str

    @property
    def nul_in_a_header_name(self) -> bool:
        return any("\x00" in name for name, _ in self.headers)

    @property
    def event_id(self) -> str | None:
        """The body's event id when it is a UUID (the record, if applied, is claimed under it)."""
        try:
            body = json.loads(self.value)
            return str(uuid.UUID(body["event_id"])) if isinstance(body.get("event_id"), str) else None
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
            return None


@dataclass(frozen=True)
class RawJson:
    """JSON text put verbatim where a value was (what json.dumps cannot or should not build)."""

    text: str


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31).flatmap(lambda n: st.sampled_from([n, -n, 2**63, 10**40])),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.text(max_size=40),
    st.text(max_size=20).map(lambda s: f"{s}\x00{s}"),
)
_mutation = st.one_of(
    _leaf,
    st.recursive(
        _leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ),
    st.integers(min_value=50, max_value=5_000).map(lambda depth: RawJson("[" * depth + "]" * depth)),
    st.integers(min_value=1_000, max_value=60_000).map(lambda size: RawJson("[" + ",".join(["1"] * size) + "]")),
)
_headers = st.lists(
    st.tuples(
        st.sampled_from(["event_id", "event_type", "trace_id", "content_type", "schema_version"])
        | st.text(max_size=12),
        st.none() | st.binary(max_size=40) | st.text(max_size=40).map(str.encode),
    ),
    max_size=5,
)
_keys = st.none() | st.binary(max_size=64)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        children = [p for key, child in value.items() for p in _paths(child, (*path, key))]
    elif isinstance(value, list):
        children = [p for n, child in enumerate(value) for p in _paths(child, (*path, n))]
    else:
        children = []
    return [path, *children] if path else children


def encode_with(envelope: Any, path: tuple[Any, ...], replacement: Any) -> bytes:
    *parents, last = path
    holder = envelope
    for step in parents:
        holder = holder[step]
    placeholder = f"__raw_{uuid.uuid4().hex}__"
    holder[last] = placeholder if isinstance(replacement, RawJson) else replacement
    text = json.dumps(envelope)  # NaN and Infinity come out as the non-standard tokens a producer might send
    if isinstance(replacement, RawJson):
        text = text.replace(f'"{placeholder}"', replacement.text)
    return text.encode()


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> FuzzedRecord:
    topic = draw(st.sampled_from(CONSUMED_TOPICS))
    envelope = samples.sample_of(topic, samples.new_id("fuzz-"))
    path = draw(st.sampled_from(_paths(envelope)))
    value = encode_with(envelope, path, draw(_mutation))
    sent_to = draw(st.sampled_from(CONSUMED_TOPICS)) if draw(st.integers(0, 9)) == 0 else topic
    return FuzzedRecord(sent_to, draw(_keys), value, draw(_headers), f"{topic} with {'/'.join(map(str, path))} mutated")


random_bytes = st.builds(
    FuzzedRecord,
    topic=st.sampled_from(CONSUMED_TOPICS),
    key=_keys,
    value=st.binary(max_size=2_000),
    headers=_headers,
    kind=st.just("random bytes"),
)
fuzzed_records = st.one_of(random_bytes, mutated_envelopes(), mutated_envelopes())


def draw_records(count: int, run_seed: int, *, nul_in_header_names: bool) -> list[FuzzedRecord]:
    """`count` records from the strategies above (seeded, so a failing run can be repeated); without a NUL
    in a header's name unless asked (a known defect: such a record cannot be parked, and on a shared topic it
    would stall every consumer reading past it)."""
    drawn: list[FuzzedRecord] = []
    strategy = fuzzed_records if nul_in_header_names else fuzzed_records.filter(lambda r: not r.nul_in_a_header_name)

    @seed(run_seed)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(record: FuzzedRecord) -> None:
        drawn.append(record)

    collect()
    return drawn
