"""The decode step: the wire contract (common_core) plus what the read model's columns can hold.

A value PostgreSQL would refuse is bad input, so it is a schema error here (the record is parked as
`schema_invalid`) rather than a database error that parks it as `internal` after a failed transaction:
- an integer beyond its column: PostgreSQL `integer` (int32) for the fields below, `bigint` (int64) for
  every other integer, those inside free-form objects (stored as JSONB) included;
- U+0000 in any string or object key: neither `text` nor `jsonb` can hold it.
NaN and Infinity are refused by the contract itself (JSON has no such numbers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from common_core import events
from common_core.envelope import EventEnvelope
from common_core.registry import decode_envelope

INT32_RANGE = range(-(2**31), 2**31)
INT64_RANGE = range(-(2**63), 2**63)

# (payload type, field) -> the int32 column it lands in
INT32_FIELDS: dict[tuple[type[BaseModel], str], str] = {
    (events.BatchEssaysRegistered, "expected_essay_count"): "batches.essay_count",
    (events.SpellcheckResultV1, "corrections_made"): "essays.spellcheck_correction_count",
    (events.EssayResultV1, "rank"): "essays.cj_rank",
    (events.BatchPipelineCompletedV1, "successful_essay_count"): "batches.completed_essay_count",
    (events.BatchPipelineCompletedV1, "failed_essay_count"): "batches.failed_essay_count",
}

# The quick test on the raw bytes, so that most records skip the walk: an integer beyond int32 has at
# least ten digits, and JSON can carry U+0000 only as the escape \u0000 (a raw one is invalid JSON).
_DIGITS_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
_INT32_NAMES: dict[type[BaseModel], frozenset[str]] = {
    model: frozenset(name for m, name in INT32_FIELDS if m is model) for model, _ in INT32_FIELDS
}
Location = tuple[str | int, ...]


def decode_event(topic: str, raw: bytes) -> EventEnvelope[Any]:
    """Parse and validate one record value; raises KeyError (unknown topic) or pydantic.ValidationError."""
    envelope = decode_envelope(topic, raw)
    if _maybe_unstorable(raw) and (problems := list(_unstorable(envelope, ()))):
        raise ValidationError.from_exception_data("EventEnvelope", problems)
    return envelope


def _maybe_unstorable(raw: bytes) -> bool:
    return b"\\u0000" in raw or b"9" * 10 in raw.translate(_DIGITS_AS_NINES)  # C speed: ~1 ns a byte


def _unstorable(node: Any, location: Location, int_range: range = INT64_RANGE) -> Iterator[InitErrorDetails]:
    if isinstance(node, bool):
        return
    if isinstance(node, int) and node not in int_range:
        bound = "int32" if int_range is INT32_RANGE else "int64"
        yield _problem("int_out_of_column_range", f"an integer beyond {bound}, the column's range", location, node)
    elif isinstance(node, str) and "\x00" in node:
        yield _problem("nul_character", "U+0000 cannot be stored in PostgreSQL text or jsonb", location, node)
    elif isinstance(node, BaseModel):
        for name, value in node.__dict__.items():
            narrow = name in _INT32_NAMES.get(type(node), ())
            yield from _unstorable(value, (*location, name), INT32_RANGE if narrow else INT64_RANGE)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _unstorable(key, (*location, "<key>"))
            yield from _unstorable(value, (*location, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _unstorable(item, (*location, index))


def _problem(kind: str, message: str, location: Location, value: Any) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": location, "input": value}
