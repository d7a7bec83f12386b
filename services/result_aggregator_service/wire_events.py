"""One event of every consumed topic as the upstream producers put it on the wire: JSON-ready envelopes
written by hand from the brief's tables (section 1).

Deliberately not generated from the pydantic models of `common_core`, so the contract tests check the
models against the wire and not against themselves. `lifecycles.py` (whole batches, for the demo, the
benchmarks and the tests) and the tests build on these; every id is random unless the caller passes one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from common_core import topics

JsonDict = dict[str, Any]


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4()}"


def iso(moment: datetime | None = None) -> str:
    """ISO-8601 in UTC with a `Z`, the way the producers write it."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def envelope(
    topic: str,
    data: JsonDict,
    *,
    event_id: str | None = None,
    event_timestamp: datetime | None = None,
    correlation_id: str | None = None,
    source_service: str = "sample-producer",
) -> JsonDict:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": topic,
        "event_timestamp": iso(event_timestamp),
        "source_service": source_service,
        "schema_version": 1,
        "correlation_id": correlation_id or str(uuid.uuid4()),
        "data_schema_uri": None,
        "data": data,
        "metadata": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "partition_key": None},
    }


def to_bytes(sample: JsonDict) -> bytes:
    """The Kafka record value of a sample."""
    return json.dumps(sample).encode()


def system_metadata(entity_id: str, entity_type: str, parent_id: str | None = None, **extra: Any) -> JsonDict:
    return {
        "entity_id": entity_id,
        "entity_type": entity_type,
        "parent_id": parent_id,
        "timestamp": iso(),
        "processing_stage": "completed",
        "started_at": None,
        "completed_at": None,
        "event": None,
        "error_info": {},
        **extra,
    }


def batch_registered(
    batch_id: str, essay_ids: Sequence[str], *, user_id: str = "user-1", course_code: str = "ENG5", **env: Any
) -> JsonDict:
    data = {
        "event": "batch.essays.registered",
        "entity_id": batch_id,
        "expected_essay_count": len(essay_ids),
        "essay_ids": list(essay_ids),
        "metadata": system_metadata(batch_id, "batch", event="batch.essays.registered"),
        "course_code": course_code,
        "student_prompt_ref": {"references": {"student_prompt_text": {"storage_id": "prompt-1", "path": ""}}},
        "user_id": user_id,
        "org_id": None,
        "class_id": None,
    }
    return envelope(topics.BATCH_ESSAYS_REGISTERED_TOPIC, data, **env)


def slot_assigned(batch_id: str, essay_id: str, *, file_name: str = "essay.docx", **env: Any) -> JsonDict:
    data = {
        "event": "essay.slot.assigned",
        "batch_id": batch_id,
        "essay_id": essay_id,
        "file_upload_id": new_id("upload-"),
        "text_storage_id": new_id("text-"),
        "original_file_name": file_name,
        "correlation_id": str(uuid.uuid4()),
        "timestamp": iso(),
    }
    return envelope(topics.ESSAY_SLOT_ASSIGNED_TOPIC, data, **env)


def phase_outcome(
    batch_id: str,
    processed: Sequence[str],
    failed: Sequence[str] = (),
    *,
    phase_name: str = "spellcheck",
    phase_status: str = "completed_successfully",
    **env: Any,
) -> JsonDict:
    data = {
        "batch_id": batch_id,
        "phase_name": phase_name,
        "phase_status": phase_status,
        "processed_essays": [
            {"essay_id": essay_id, "text_storage_id": new_id("text-"), "spellcheck_metrics": None}
            for essay_id in processed
        ],
        "failed_essay_ids": list(failed),
        "correlation_id": str(uuid.uuid4()),
    }
    return envelope(topics.BATCH_PHASE_OUTCOME_TOPIC, data, **env)


def spellcheck_result(
    batch_id: str, essay_id: str, *, status: str = "spellchecked_success", corrections: int = 3, **env: Any
) -> JsonDict:
    failed = "failed" in status
    error_info = {"error_code": "SPELLCHECK_ERROR", "error_message": "boom", "error_type": "x", "context": {}}
    data = {
        "event_name": "essay.spellcheck.completed",
        "entity_id": essay_id,
        "entity_type": "essay",
        "parent_id": batch_id,
        "timestamp": iso(),
        "status": status,
        "system_metadata": system_metadata(essay_id, "essay", batch_id, error_info=error_info if failed else {}),
        "batch_id": batch_id,
        "correlation_id": str(uuid.uuid4()),
        "user_id": None,
        "corrections_made": corrections,
        "correction_metrics": {
            "total_corrections": corrections,
            "l2_dictionary_corrections": 1,
            "spellchecker_corrections": corrections - 1,
            "word_count": 250,
            "correction_density": corrections / 250,
        },
        "original_text_storage_id": new_id("text-"),
        "corrected_text_storage_id": None if failed else new_id("corrected-"),
        "processing_duration_ms": 120,
        "processor_version": "1.4.2",
    }
    return envelope(topics.SPELLCHECK_RESULTS_TOPIC, data, **env)


def spellcheck_as_schema_2(sample: JsonDict, language: str = "en") -> JsonDict:
    """The same spellcheck result as a producer on schema_version 2 sends it: `corrections_made` renamed
    `correction_count`, `language` added."""
    data = {**sample["data"], "language": language}
    data["correction_count"] = data.pop("corrections_made")
    return {**sample, "schema_version": 2, "data": data}


def essay_result(
    essay_id: str,
    rank: int = 1,
    *,
    is_anchor: bool = False,
    grade: str = "B+",
    normalized_score: float = 0.75,
    bt_score: float = 1.25,
    confidence_score: float = 0.8,
    confidence_label: str = "HIGH",
) -> JsonDict:
    return {
        "essay_id": essay_id,
        "normalized_score": normalized_score,
        "letter_grade": grade,
        "confidence_score": confidence_score,
        "confidence_label": confidence_label,
        "bt_score": bt_score,
        "rank": rank,
        "is_anchor": is_anchor,
        "feedback_uri": None,
        "metrics_uri": None,
        "display_name": None,
    }


def assessment_result(
    batch_id: str,
    essay_results: Sequence[JsonDict],
    *,
    assignment_id: str | None = "assignment-1",
    assessment_metadata: JsonDict | None = None,
    **env: Any,
) -> JsonDict:
    data = {
        "event_name": "assessment.result.published",
        "entity_id": batch_id,
        "entity_type": "batch",
        "parent_id": None,
        "timestamp": iso(),
        "batch_id": batch_id,
        "cj_assessment_job_id": new_id("cj-job-"),
        "assignment_id": assignment_id,
        "assessment_method": "cj_assessment",
        "model_used": "claude-haiku",
        "model_provider": "anthropic",
        "model_version": None,
        "essay_results": list(essay_results),
        "assessment_metadata": assessment_metadata
        or {"anchor_essays_used": 0, "calibration_method": "default", "comparison_count": 12},
        "assessed_at": iso(),
    }
    return envelope(topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC, data, **env)


def pipeline_completed(
    batch_id: str,
    *,
    final_status: str = "completed_successfully",
    successful: int = 1,
    failed: int = 0,
    completed_phases: Sequence[str] = ("spellcheck", "cj_assessment"),
    processing_duration_seconds: float = 42.5,
    **env: Any,
) -> JsonDict:
    data = {
        "event": "batch.pipeline.completed",
        "batch_id": batch_id,
        "completed_phases": list(completed_phases),
        "final_status": final_status,
        "processing_duration_seconds": processing_duration_seconds,
        "successful_essay_count": successful,
        "failed_essay_count": failed,
        "correlation_id": str(uuid.uuid4()),
        "metadata": system_metadata(batch_id, "batch", event="batch.pipeline.completed"),
    }
    return envelope(topics.BATCH_PIPELINE_COMPLETED_TOPIC, data, **env)
