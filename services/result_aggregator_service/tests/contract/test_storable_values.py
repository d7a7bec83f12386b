"""Values no column can hold are schema errors at decode time: NaN and Infinity anywhere (JSON has none),
integers beyond their column's range, U+0000 in strings. Before, they reached PostgreSQL and were parked
as `internal`."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from common_core import topics
from common_core.registry import decode_envelope
from result_aggregator_service.adapters import tables
from result_aggregator_service.adapters.in_memory import InMemoryStore, InMemoryUnitOfWork
from result_aggregator_service.service_layer.decoding import (
    INT32_FIELDS,
    VARCHAR_FIELDS,
    VARCHAR_LIMIT,
    decode_event,
)
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import ParkReason
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import RecordingChangeSink, SetSeenEventHints, record_of

INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]  # 1e400 overflows to Infinity


SPELLCHECK_2 = f"{topics.SPELLCHECK_RESULTS_TOPIC}@2"  # the spellcheck sample at schema_version 2


def _topic(sample: str) -> str:
    return sample.split("@", maxsplit=1)[0]


def _sample(topic: str) -> dict[str, Any]:
    return {
        SPELLCHECK_2: samples.spellcheck_as_schema_2(samples.spellcheck_result("b1", "e1")),
        topics.BATCH_ESSAYS_REGISTERED_TOPIC: samples.batch_registered("b1", ["e1"]),
        topics.ESSAY_SLOT_ASSIGNED_TOPIC: samples.slot_assigned("b1", "e1"),
        topics.BATCH_PHASE_OUTCOME_TOPIC: samples.phase_outcome("b1", ["e1"], ["e2"]),
        topics.SPELLCHECK_RESULTS_TOPIC: samples.spellcheck_result("b1", "e1"),
        topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: samples.assessment_result("b1", [samples.essay_result("e1")]),
        topics.BATCH_PIPELINE_COMPLETED_TOPIC: samples.pipeline_completed("b1"),
    }[topic]


# (topic, path below the envelope) of every free-form object of the contracts
FREE_FORM_OBJECTS = [
    (topics.BATCH_ESSAYS_REGISTERED_TOPIC, ("metadata",)),
    (topics.BATCH_ESSAYS_REGISTERED_TOPIC, ("data", "metadata", "error_info")),
    (topics.SPELLCHECK_RESULTS_TOPIC, ("data", "system_metadata", "error_info")),
    (topics.BATCH_PHASE_OUTCOME_TOPIC, ("data", "processed_essays", 0, "spellcheck_metrics")),
    (topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, ("data", "assessment_metadata")),
    (topics.BATCH_PIPELINE_COMPLETED_TOPIC, ("data", "metadata", "error_info")),
]

# (topic, path, the widest integer the column takes)
INTEGERS = [
    (topics.BATCH_ESSAYS_REGISTERED_TOPIC, ("data", "expected_essay_count"), INT32_MAX),
    (topics.SPELLCHECK_RESULTS_TOPIC, ("data", "corrections_made"), INT32_MAX),
    (SPELLCHECK_2, ("data", "correction_count"), INT32_MAX),
    (topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, ("data", "essay_results", 0, "rank"), INT32_MAX),
    (topics.BATCH_PIPELINE_COMPLETED_TOPIC, ("data", "successful_essay_count"), INT32_MAX),
    (topics.BATCH_PIPELINE_COMPLETED_TOPIC, ("data", "failed_essay_count"), INT32_MAX),
    (topics.SPELLCHECK_RESULTS_TOPIC, ("data", "correction_metrics", "word_count"), INT64_MAX),
    (topics.SPELLCHECK_RESULTS_TOPIC, ("data", "processing_duration_ms"), INT64_MAX),
    (topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, ("data", "assessment_metadata", "comparison_count"), INT64_MAX),
]


# (topic, path) of every identifier stored in a varchar(255) column
IDENTIFIERS = [
    *[(topics.BATCH_ESSAYS_REGISTERED_TOPIC, ("data", f)) for f in ("entity_id", "user_id", "org_id", "class_id")],
    (topics.BATCH_ESSAYS_REGISTERED_TOPIC, ("data", "essay_ids", 0)),
    *[
        (topics.ESSAY_SLOT_ASSIGNED_TOPIC, ("data", f))
        for f in ("batch_id", "essay_id", "file_upload_id", "text_storage_id")
    ],
    (topics.BATCH_PHASE_OUTCOME_TOPIC, ("data", "batch_id")),
    (topics.BATCH_PHASE_OUTCOME_TOPIC, ("data", "failed_essay_ids", 0)),
    (topics.BATCH_PHASE_OUTCOME_TOPIC, ("data", "processed_essays", 0, "essay_id")),
    *[
        (sample, ("data", f))
        for sample in (topics.SPELLCHECK_RESULTS_TOPIC, SPELLCHECK_2)
        for f in ("batch_id", "entity_id", "corrected_text_storage_id")
    ],
    (topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, ("data", "batch_id")),
    (topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, ("data", "essay_results", 0, "essay_id")),
    (topics.BATCH_PIPELINE_COMPLETED_TOPIC, ("data", "batch_id")),
]


def _raw_with(topic: str, path: tuple[str | int, ...], literal: str) -> bytes:
    """The sample as JSON text with `literal` (any JSON-ish token, NaN included) at `path`."""
    sample = copy.deepcopy(_sample(topic))
    parent: Any = sample
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = "@@VALUE@@"
    return json.dumps(sample).replace('"@@VALUE@@"', literal).encode()


def _schema_error(topic: str, raw: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        decode_event(_topic(topic), raw)
    assert all(error["type"] != "json_invalid" for error in caught.value.errors())  # parked as schema_invalid
    return caught.value


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize(("topic", "path"), FREE_FORM_OBJECTS)
def test_nan_or_infinity_at_any_depth_of_a_free_form_object_is_a_schema_error(
    topic: str, path: tuple[str | int, ...], literal: str
) -> None:
    for nested in (f'{{"x": {literal}}}', f'{{"x": [1, {{"y": {literal}}}]}}'):
        with pytest.raises(ValidationError):
            decode_envelope(topic, _raw_with(topic, path, nested))  # the contract itself refuses it
        _schema_error(topic, _raw_with(topic, path, nested))


@pytest.mark.parametrize(("topic", "path"), FREE_FORM_OBJECTS)
def test_finite_numbers_in_a_free_form_object_decode(topic: str, path: tuple[str | int, ...]) -> None:
    decode_event(_topic(topic), _raw_with(topic, path, '{"x": [1.5, -2, 1e300, {"y": 0}]}'))


@pytest.mark.parametrize(("topic", "path", "widest"), INTEGERS)
def test_an_integer_beyond_its_columns_range_is_a_schema_error(
    topic: str, path: tuple[str | int, ...], widest: int
) -> None:
    decode_event(_topic(topic), _raw_with(topic, path, str(widest)))
    error = _schema_error(topic, _raw_with(topic, path, str(widest + 1)))
    assert [e["loc"] for e in error.errors()] == [path]
    _schema_error(topic, _raw_with(topic, path, str(-widest - 2)))


def test_every_int32_field_is_named_with_its_column() -> None:
    checked = {path[-1] for _, path, widest in INTEGERS if widest == INT32_MAX}
    assert checked == {field for _, field in INT32_FIELDS}


@pytest.mark.parametrize(("topic", "path"), IDENTIFIERS)
def test_an_identifier_longer_than_its_column_is_a_schema_error(topic: str, path: tuple[str | int, ...]) -> None:
    decode_event(_topic(topic), _raw_with(topic, path, json.dumps("é" * VARCHAR_LIMIT)))  # characters, not bytes
    error = _schema_error(topic, _raw_with(topic, path, json.dumps("x" * (VARCHAR_LIMIT + 1))))
    assert [e["loc"] for e in error.errors()] == [path]


def test_every_checked_field_names_a_column_of_the_claimed_type() -> None:
    def column(name: str) -> Any:
        table, column_name = name.split(".")
        return getattr(tables, table).c[column_name]

    assert {type(column(name).type).__name__ for name in INT32_FIELDS.values()} == {"Integer"}
    assert {column(name).type.length for name in VARCHAR_FIELDS.values()} == {VARCHAR_LIMIT}
    assert len(IDENTIFIERS) == len(VARCHAR_FIELDS)  # each checked field has its sample above


def test_an_integer_too_big_for_any_column_inside_a_free_form_object_is_a_schema_error() -> None:
    path = ("data", "system_metadata", "error_info")
    _schema_error(
        topics.SPELLCHECK_RESULTS_TOPIC, _raw_with(topics.SPELLCHECK_RESULTS_TOPIC, path, f'{{"n": [{2**64}]}}')
    )


@pytest.mark.parametrize(
    ("path", "literal"),
    [
        (("data", "user_id"), '"teacher\\u0000"'),
        (("data", "essay_ids"), '["e1", "e\\u00002"]'),
        (("data", "metadata", "error_info"), '{"context": {"note": "a\\u0000b"}}'),
        (("data", "metadata", "error_info"), '{"bad\\u0000key": 1}'),
    ],
)
def test_a_nul_character_in_a_string_is_a_schema_error(path: tuple[str | int, ...], literal: str) -> None:
    _schema_error(topics.BATCH_ESSAYS_REGISTERED_TOPIC, _raw_with(topics.BATCH_ESSAYS_REGISTERED_TOPIC, path, literal))


async def test_the_ingest_parks_unstorable_values_as_schema_invalid_and_applies_the_rest() -> None:
    store = InMemoryStore()
    topic = topics.BATCH_ESSAYS_REGISTERED_TOPIC
    good = samples.batch_registered("b-good", ["e1"])
    bad_values = [
        _raw_with(topic, ("data", "metadata", "error_info"), '{"x": NaN}'),
        _raw_with(topic, ("data", "expected_essay_count"), str(2**31)),
        _raw_with(topic, ("data", "user_id"), '"a\\u0000"'),
    ]
    records = [record_of({}, topic=topic, value=value) for value in bad_values] + [record_of(good)]

    await process_batch(records, InMemoryUnitOfWork(store), SetSeenEventHints(), RecordingChangeSink())

    assert [(record.value, reason) for record, reason, _, _ in store.parked] == [
        (value, ParkReason.SCHEMA_INVALID) for value in bad_values
    ]
    assert store.batches["b-good"].is_registered
