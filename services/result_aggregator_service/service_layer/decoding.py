"""The decode step: the wire contract (common_core) of the schema version the envelope states, what the
read model's columns can hold, then the upcast to the topic's current version (schema_versions.py).

A value PostgreSQL would refuse is bad input, so it is a schema error here (the record is parked as
`schema_invalid`) rather than a database error that parks it as `internal` after a failed transaction:
- an integer beyond its column: PostgreSQL `integer` (int32) for the fields below, `bigint` (int64) for
  every other integer, those inside free-form objects (stored as JSONB) included;
- an identifier longer than its `varchar(255)` column (the fields below);
- U+0000 in any string or object key: neither `text` nor `jsonb` can hold it.
NaN and Infinity are refused by the contract itself (JSON has no such numbers). The checks run before the
upcast, so an error names the field as the producer sent it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from common_core import events
from common_core.envelope import EventEnvelope
from result_aggregator_service.service_layer.schema_versions import upcast, validate_stated_version

INT32_RANGE = range(-(2**31), 2**31)
INT64_RANGE = range(-(2**63), 2**63)

# (payload type, field) -> the int32 column it lands in
INT32_FIELDS: dict[tuple[type[BaseModel], str], str] = {
    (events.BatchEssaysRegistered, "expected_essay_count"): "batches.essay_count",
    (events.SpellcheckResultV1, "corrections_made"): "essays.spellcheck_correction_count",
    (events.SpellcheckResultV1Schema2, "correction_count"): "essays.spellcheck_correction_count",
    (events.EssayResultV1, "rank"): "essays.cj_rank",
    (events.BatchPipelineCompletedV1, "successful_essay_count"): "batches.completed_essay_count",
    (events.BatchPipelineCompletedV1, "failed_essay_count"): "batches.failed_essay_count",
}

VARCHAR_LIMIT = 255
# (payload type, field) -> the varchar(255) column its value, or each of its items, lands in
VARCHAR_FIELDS: dict[tuple[type[BaseModel], str], str] = {
    (events.BatchEssaysRegistered, "entity_id"): "batches.batch_id",
    (events.BatchEssaysRegistered, "essay_ids"): "essays.essay_id",
    (events.BatchEssaysRegistered, "user_id"): "batches.user_id",
    (events.BatchEssaysRegistered, "org_id"): "batches.org_id",
    (events.BatchEssaysRegistered, "class_id"): "batches.class_id",
    (events.EssaySlotAssignedV1, "batch_id"): "essays.batch_id",
    (events.EssaySlotAssignedV1, "essay_id"): "essays.essay_id",
    (events.EssaySlotAssignedV1, "file_upload_id"): "essays.file_upload_id",
    (events.EssaySlotAssignedV1, "text_storage_id"): "essays.text_storage_id",
    (events.ELSBatchPhaseOutcomeV1, "batch_id"): "batches.batch_id",
    (events.ELSBatchPhaseOutcomeV1, "failed_essay_ids"): "essays.essay_id",
    (events.ProcessedEssay, "essay_id"): "essays.essay_id",
    (events.SpellcheckResultV1, "batch_id"): "batches.batch_id",
    (events.SpellcheckResultV1, "entity_id"): "essays.essay_id",
    (events.SpellcheckResultV1, "corrected_text_storage_id"): "essays.spellcheck_corrected_text_storage_id",
    (events.SpellcheckResultV1Schema2, "batch_id"): "batches.batch_id",
    (events.SpellcheckResultV1Schema2, "entity_id"): "essays.essay_id",
    (events.SpellcheckResultV1Schema2, "corrected_text_storage_id"): "essays.spellcheck_corrected_text_storage_id",
    (events.AssessmentResultV1, "batch_id"): "batches.batch_id",
    (events.EssayResultV1, "essay_id"): "essays.essay_id",
    (events.BatchPipelineCompletedV1, "batch_id"): "batches.batch_id",
}

# The quick test on the raw bytes, so that most records skip the walk. It may flag a record that is fine
# (then the walk finds nothing) but never misses one: an integer beyond int32 is a number token of at
# least ten digits, right after `:`, `,` or `[` once whitespace and signs are dropped (digits inside
# strings rarely follow those); JSON carries U+0000 only as the escape \u0000 (a raw one is invalid).
_DIGITS_AND_OPENERS = bytes.maketrans(b"012345678,[", b"999999999::")  # every digit a 9, every opener a :
_SPACES_AND_SIGNS = b" \t\n\r-+"
_LONG_NUMBER = b":" + b"9" * 10
_INT32_NAMES: dict[type[BaseModel], frozenset[str]] = {
    model: frozenset(name for m, name in INT32_FIELDS if m is model) for model, _ in INT32_FIELDS
}
_VARCHAR_NAMES: dict[type[BaseModel], tuple[str, ...]] = {
    model: tuple(name for m, name in VARCHAR_FIELDS if m is model) for model, _ in VARCHAR_FIELDS
}
# where the models named in VARCHAR_FIELDS sit inside a payload
_LISTED_MODELS: dict[type[BaseModel], tuple[str, ...]] = {
    events.ELSBatchPhaseOutcomeV1: ("processed_essays",),
    events.AssessmentResultV1: ("essay_results",),
}
Location = tuple[str | int, ...]


def decode_event(topic: str, raw: bytes) -> EventEnvelope[Any]:
    """Parse and validate one record value, its payload in the topic's current version; raises KeyError
    (unknown topic), pydantic.ValidationError or schema_versions.UnsupportedSchemaVersion."""
    envelope = validate_stated_version(topic, raw)
    problems = _too_long(envelope.data, ("data",))
    if _maybe_unstorable(raw):
        problems += _unstorable(envelope, ())
    if problems:
        raise ValidationError.from_exception_data("EventEnvelope", problems)
    return upcast(topic, envelope)


def _maybe_unstorable(raw: bytes) -> bool:
    if b"\\u0000" in raw:
        return True
    return _LONG_NUMBER in raw.translate(_DIGITS_AND_OPENERS, _SPACES_AND_SIGNS)  # C speed, a few ns a byte


def _too_long(model: BaseModel, location: Location) -> list[InitErrorDetails]:
    """The identifiers of `model`, and of the models listed in it, that exceed their varchar column."""
    problems = []
    for name in _VARCHAR_NAMES.get(type(model), ()):
        value = getattr(model, name)
        if isinstance(value, list):
            if value and max(map(len, value)) > VARCHAR_LIMIT:
                problems += [_long(v, (*location, name, i)) for i, v in enumerate(value) if len(v) > VARCHAR_LIMIT]
        elif value is not None and len(value) > VARCHAR_LIMIT:
            problems.append(_long(value, (*location, name)))
    for name in _LISTED_MODELS.get(type(model), ()):
        for index, item in enumerate(getattr(model, name)):
            problems += _too_long(item, (*location, name, index))
    return problems


def _long(value: str, location: Location) -> InitErrorDetails:
    return _problem("string_too_long", f"longer than {VARCHAR_LIMIT} characters", location, value)


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
