"""The wire contracts (brief, section 1): hand-made samples of every topic decode; bad input is a schema error."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from common_core import events, topics
from common_core.registry import decode_envelope
from result_aggregator_service.tests.contract import sample_envelopes as samples

PAYLOAD_BY_TOPIC = {
    topics.BATCH_ESSAYS_REGISTERED_TOPIC: events.BatchEssaysRegistered,
    topics.ESSAY_SLOT_ASSIGNED_TOPIC: events.EssaySlotAssignedV1,
    topics.BATCH_PHASE_OUTCOME_TOPIC: events.ELSBatchPhaseOutcomeV1,
    topics.SPELLCHECK_RESULTS_TOPIC: events.SpellcheckResultV1,
    topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: events.AssessmentResultV1,
    topics.BATCH_PIPELINE_COMPLETED_TOPIC: events.BatchPipelineCompletedV1,
}

METADATA_REQUIRED = ["metadata.entity_id", "metadata.entity_type", "metadata.timestamp", "metadata.error_info"]

# Required fields, copied from the brief's tables (dotted paths below `data`; numbers index lists).
REQUIRED_FIELDS = {
    topics.BATCH_ESSAYS_REGISTERED_TOPIC: [
        "entity_id", "expected_essay_count", "essay_ids", "metadata", "course_code", "user_id", *METADATA_REQUIRED,
        "student_prompt_ref.references", "student_prompt_ref.references.student_prompt_text.storage_id",
    ],
    topics.ESSAY_SLOT_ASSIGNED_TOPIC: [
        "batch_id", "essay_id", "file_upload_id", "text_storage_id", "original_file_name", "correlation_id",
        "timestamp",
    ],
    topics.BATCH_PHASE_OUTCOME_TOPIC: [
        "batch_id", "phase_name", "phase_status", "processed_essays", "failed_essay_ids", "correlation_id",
        "processed_essays.0.essay_id", "processed_essays.0.text_storage_id",
    ],
    topics.SPELLCHECK_RESULTS_TOPIC: [
        "event_name", "entity_id", "timestamp", "status", "system_metadata", "batch_id", "correlation_id",
        "corrections_made", "correction_metrics", "original_text_storage_id", "processing_duration_ms",
        "processor_version", "system_metadata.entity_id", "system_metadata.error_info",
        "correction_metrics.total_corrections",
        "correction_metrics.l2_dictionary_corrections", "correction_metrics.spellchecker_corrections",
        "correction_metrics.word_count", "correction_metrics.correction_density",
    ],
    topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: [
        "timestamp", "batch_id", "cj_assessment_job_id", "assessment_method", "model_used", "model_provider",
        "essay_results", "assessment_metadata", "assessed_at", "essay_results.0.essay_id",
        "essay_results.0.normalized_score", "essay_results.0.letter_grade", "essay_results.0.confidence_score",
        "essay_results.0.confidence_label", "essay_results.0.bt_score", "essay_results.0.rank",
    ],
    topics.BATCH_PIPELINE_COMPLETED_TOPIC: [
        "batch_id", "completed_phases", "final_status", "processing_duration_seconds", "successful_essay_count",
        "failed_essay_count", "correlation_id", "metadata", *METADATA_REQUIRED,
    ],
}  # fmt: skip

ENVELOPE_REQUIRED = ["event_id", "event_type", "event_timestamp", "source_service", "correlation_id", "data"]


def _decode(topic: str, sample: dict[str, Any]) -> Any:
    return decode_envelope(topic, samples.to_bytes(sample))


def _parent_and_key(node: Any, path: str) -> tuple[Any, str | int]:
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    for part in parents:
        node = node[part]
    return node, last


def _without(sample: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(sample)
    parent, key = _parent_and_key(changed, path)
    del parent[key]
    return changed


def _with(sample: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(sample)
    parent, key = _parent_and_key(changed, path)
    parent[key] = value
    return changed


def _wrongly_typed(value: Any) -> Any:
    """A JSON value of another type than `value`: int for a string, string for a number, and so on."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 123
    if isinstance(value, list):
        return "not-a-list"
    return "not-an-object"


def _typed_fields() -> list[tuple[str, str]]:
    """Every non-null top-level field of every sample payload, plus the envelope's own fields."""
    cases = [(topics.SPELLCHECK_RESULTS_TOPIC, f"/{name}") for name in (*ENVELOPE_REQUIRED, "schema_version")]
    for topic in topics.CONSUMED_TOPICS:
        data = samples.sample_of(topic)["data"]
        cases += [(topic, name) for name, value in data.items() if value is not None]
    return cases


def _envelope_path(path: str) -> str:
    return path[1:] if path.startswith("/") else f"data.{path}"


@pytest.mark.parametrize("topic", topics.CONSUMED_TOPICS)
def test_a_hand_made_sample_of_every_topic_decodes_into_its_payload(topic: str) -> None:
    decoded = _decode(topic, samples.sample_of(topic))
    assert isinstance(decoded.data, PAYLOAD_BY_TOPIC[topic])


@pytest.mark.parametrize("topic", topics.CONSUMED_TOPICS)
def test_a_decoded_envelope_round_trips_through_json(topic: str) -> None:
    decoded = _decode(topic, samples.sample_of(topic))
    assert decode_envelope(topic, decoded.model_dump_json().encode()) == decoded


def test_the_payload_is_chosen_by_topic_not_by_event_type() -> None:
    sample = samples.sample_of(topics.BATCH_PIPELINE_COMPLETED_TOPIC)
    decoded = _decode(topics.BATCH_PIPELINE_COMPLETED_TOPIC, {**sample, "event_type": "something.else.v9"})
    assert isinstance(decoded.data, events.BatchPipelineCompletedV1)
    with pytest.raises(ValidationError):
        _decode(topics.ESSAY_SLOT_ASSIGNED_TOPIC, sample)


def test_schema_version_defaults_to_one_and_optional_envelope_fields_may_be_absent() -> None:
    sample = samples.sample_of(topics.ESSAY_SLOT_ASSIGNED_TOPIC)
    for optional in ("schema_version", "data_schema_uri", "metadata"):
        del sample[optional]
    decoded = _decode(topics.ESSAY_SLOT_ASSIGNED_TOPIC, sample)
    assert (decoded.schema_version, decoded.data_schema_uri, decoded.metadata) == (1, None, None)


@pytest.mark.parametrize("topic", topics.CONSUMED_TOPICS)
def test_unknown_fields_in_the_envelope_and_the_payload_are_tolerated(topic: str) -> None:
    sample = samples.sample_of(topic)
    extended = copy.deepcopy(sample)
    extended["added_by_a_newer_producer"] = {"nested": [1, 2]}
    extended["data"]["new_payload_field"] = "ignored"
    for nested in ("metadata", "system_metadata", "correction_metrics"):
        if isinstance(extended["data"].get(nested), dict):
            extended["data"][nested]["new_nested_field"] = 1.5
    for item in extended["data"].get("essay_results", []) + extended["data"].get("processed_essays", []):
        item["new_item_field"] = True
    assert _decode(topic, extended) == _decode(topic, sample)


@pytest.mark.parametrize("field", ENVELOPE_REQUIRED)
def test_an_envelope_missing_a_required_field_is_a_schema_error(field: str) -> None:
    with pytest.raises(ValidationError):
        _decode(topics.SPELLCHECK_RESULTS_TOPIC, _without(samples.sample_of(topics.SPELLCHECK_RESULTS_TOPIC), field))


@pytest.mark.parametrize(("topic", "field"), [(t, f) for t, fields in REQUIRED_FIELDS.items() for f in fields])
def test_a_payload_missing_a_required_field_is_a_schema_error(topic: str, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _decode(topic, _without(samples.sample_of(topic), f"data.{field}"))
    assert raised.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize(("topic", "field"), _typed_fields())
def test_a_field_of_the_wrong_type_is_a_schema_error(topic: str, field: str) -> None:
    sample = samples.sample_of(topic)
    path = _envelope_path(field)
    parent, key = _parent_and_key(sample, path)
    with pytest.raises(ValidationError):
        _decode(topic, _with(sample, path, _wrongly_typed(parent[key])))


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        (topics.BATCH_ESSAYS_REGISTERED_TOPIC, "course_code", "ENG9"),
        (topics.BATCH_ESSAYS_REGISTERED_TOPIC, "event", "batch.essays.deleted"),
        (topics.BATCH_PHASE_OUTCOME_TOPIC, "phase_name", "grading"),
        (topics.BATCH_PHASE_OUTCOME_TOPIC, "phase_status", "done"),
        (topics.BATCH_PIPELINE_COMPLETED_TOPIC, "final_status", "COMPLETED_SUCCESSFULLY"),
        (topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, "essay_results.0.confidence_label", "VERY_HIGH"),
        (topics.ESSAY_SLOT_ASSIGNED_TOPIC, "correlation_id", "not-a-uuid"),
        (topics.ESSAY_SLOT_ASSIGNED_TOPIC, "timestamp", "yesterday"),
        (topics.SPELLCHECK_RESULTS_TOPIC, "correction_metrics.word_count", 250.5),
        (topics.SPELLCHECK_RESULTS_TOPIC, "corrections_made", True),
    ],
)
def test_a_value_outside_an_enumeration_or_format_is_a_schema_error(topic: str, field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        _decode(topic, _with(samples.sample_of(topic), f"data.{field}", value))


def _assessment_with(**essay_fields: Any) -> dict[str, Any]:
    sample = samples.sample_of(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC)
    sample["data"]["essay_results"][0].update(essay_fields)
    return sample


@pytest.mark.parametrize("grade", ["A", "A+", "A-", "C", "F", "F-", "U"])
def test_a_letter_grade_matching_the_pattern_is_accepted(grade: str) -> None:
    decoded = _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, _assessment_with(letter_grade=grade))
    assert decoded.data.essay_results[0].letter_grade == grade


@pytest.mark.parametrize("grade", ["G", "A++", "a", "U+", "", "AB", " A", "A\n"])
def test_a_letter_grade_not_matching_the_pattern_is_a_schema_error(grade: str) -> None:
    with pytest.raises(ValidationError):
        _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, _assessment_with(letter_grade=grade))


@pytest.mark.parametrize("field", ["normalized_score", "confidence_score"])
@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0])
def test_a_score_between_zero_and_one_is_accepted(field: str, value: float) -> None:
    _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, _assessment_with(**{field: value}))


@pytest.mark.parametrize("field", ["normalized_score", "confidence_score"])
@pytest.mark.parametrize("value", [-0.01, 1.0001, 2, -1])
def test_a_score_outside_zero_to_one_is_a_schema_error(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, _assessment_with(**{field: value}))


def test_a_nan_score_is_a_schema_error() -> None:
    raw = json.dumps(_assessment_with(normalized_score=0.123)).replace("0.123", "NaN").encode()
    with pytest.raises(ValidationError):
        decode_envelope(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, raw)


@pytest.mark.parametrize(("rank", "valid"), [(1, True), (250, True), (0, False), (-1, False)])
def test_a_rank_must_be_positive(rank: int, valid: bool) -> None:
    sample = _assessment_with(rank=rank)
    if valid:
        assert _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, sample).data.essay_results[0].rank == rank
    else:
        with pytest.raises(ValidationError):
            _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, sample)


@pytest.mark.parametrize(("assignment_id", "valid"), [(None, True), ("a" * 100, True), ("a" * 101, False)])
def test_an_assignment_id_is_at_most_a_hundred_characters(assignment_id: str | None, valid: bool) -> None:
    sample = samples.assessment_result("b", [samples.essay_result("e")], assignment_id=assignment_id)
    if valid:
        assert _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, sample).data.assignment_id == assignment_id
    else:
        with pytest.raises(ValidationError):
            _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, sample)


def test_an_anchor_essay_is_flagged_and_is_anchor_defaults_to_false() -> None:
    anchor = samples.essay_result("anchor-1", is_anchor=True)
    plain = samples.essay_result("e-1")
    del plain["is_anchor"]
    decoded = _decode(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, samples.assessment_result("b", [anchor, plain]))
    assert [result.is_anchor for result in decoded.data.essay_results] == [True, False]


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe\x00", b'{"event_id": ', b"{'single': 'quotes'}"])
def test_undecodable_bytes_are_a_json_invalid_error(raw: bytes) -> None:
    with pytest.raises(ValidationError) as raised:
        decode_envelope(topics.SPELLCHECK_RESULTS_TOPIC, raw)
    assert raised.value.errors()[0]["type"] == "json_invalid"


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"a string"', b"null"])
def test_json_that_is_not_an_object_is_a_schema_error(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_envelope(topics.SPELLCHECK_RESULTS_TOPIC, raw)


@pytest.mark.parametrize("topic", ["huleedu.unknown.topic.v1", "", "huleedu.batch.essays.registered.v2"])
def test_an_unknown_topic_is_a_key_error(topic: str) -> None:
    with pytest.raises(KeyError):
        decode_envelope(topic, samples.to_bytes(samples.sample_of(topics.BATCH_ESSAYS_REGISTERED_TOPIC)))
