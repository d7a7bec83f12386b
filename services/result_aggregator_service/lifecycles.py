"""What a realistic HuleEdu batch lifecycle looks like on the wire, and what the API must show once the
service has folded it. The one place the demo producer, the benchmarks and the tests get whole batches.

A lifecycle, in the platform's order: the batch service registers the batch; the essay lifecycle service
assigns each essay's file to a slot; the spellchecker publishes one result per essay (some fail); the
spellcheck phase outcome; the CJ assessment ranks the essays that passed, calibrated with an anchor essay
that is not one of the batch's; the CJ phase outcome; the pipeline completed.

The expected state is written from what the producers said, never computed by the service's rules, so
a test comparing it with the API checks the fold. `delivered` reorders and duplicates events the way
redeliveries and parallel producers do; the expected state does not change with it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common_core import topics
from common_core.enums import BatchStatus, CourseCode, PhaseName
from result_aggregator_service import wire_events as wire
from result_aggregator_service.wire_events import JsonDict

_STUDENTS = ("astrid", "bilal", "chen", "dagny", "elif", "farah", "gustav", "hanna", "ivar", "jonna", "kalle")
_GRADES = ((0.9, "A"), (0.75, "B"), (0.6, "C"), (0.45, "D"), (0.3, "E"), (0.0, "F"))
_PRODUCERS = {
    topics.BATCH_ESSAYS_REGISTERED_TOPIC: "batch_orchestrator_service",
    topics.ESSAY_SLOT_ASSIGNED_TOPIC: "essay_lifecycle_service",
    topics.BATCH_PHASE_OUTCOME_TOPIC: "essay_lifecycle_service",
    topics.SPELLCHECK_RESULTS_TOPIC: "spellchecker_service",
    topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: "cj_assessment_service",
    topics.BATCH_PIPELINE_COMPLETED_TOPIC: "batch_orchestrator_service",
}


@dataclass(frozen=True)
class Lifecycle:
    batch_id: str
    user_id: str
    events: tuple[JsonDict, ...]  # in the order the platform produces them
    expected: JsonDict  # the BatchStatusResponse fields this lifecycle determines, essays sorted by id


def batch_lifecycle(
    rng: random.Random,
    user_id: str,
    *,
    essay_count: int | None = None,
    spellcheck_failure_rate: float = 0.15,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
) -> Lifecycle:
    """One batch of `essay_count` essays (3 to 8 when None) that ends completed, with failures when a
    spellcheck failed (at least one essay passes). Every choice and the batch and essay ids come from
    `rng`, so a seeded run repeats them; event ids and storage ids are random."""
    count = essay_count if essay_count is not None else rng.randint(3, 8)
    batch_id, course = _uuid(rng), rng.choice(list(CourseCode)).value
    essay_ids = sorted(_uuid(rng) for _ in range(count))
    failed = [essay_id for essay_id in essay_ids[1:] if rng.random() < spellcheck_failure_rate]
    passed = [essay_id for essay_id in essay_ids if essay_id not in failed]
    slots = [wire.slot_assigned(batch_id, e, file_name=f"{rng.choice(_STUDENTS)}_{course}.docx") for e in essay_ids]
    spellchecks = [_spellcheck(rng, batch_id, essay_id, essay_id in failed) for essay_id in essay_ids]
    assessment = _assessment(rng, batch_id, course, passed)
    final = BatchStatus.COMPLETED_WITH_FAILURES if failed else BatchStatus.COMPLETED_SUCCESSFULLY
    events = [
        wire.batch_registered(batch_id, essay_ids, user_id=user_id, course_code=course),
        *slots,
        *spellchecks,
        wire.phase_outcome(batch_id, passed, failed, phase_name=PhaseName.SPELLCHECK.value, phase_status=_of(failed)),
        assessment,
        wire.phase_outcome(batch_id, passed, phase_name=PhaseName.CJ_ASSESSMENT.value),
        wire.pipeline_completed(
            batch_id,
            final_status=final.value,
            successful=len(passed),
            failed=len(failed),
            processing_duration_seconds=(len(essay_ids) * 2 + 4) * step.total_seconds(),
        ),
    ]
    moment = start or datetime.now(UTC)
    for event in events:
        event["event_timestamp"], moment = wire.iso(moment), moment + step
        event["source_service"] = _PRODUCERS[event["event_type"]]
    expected = {
        "batch_id": batch_id,
        "user_id": user_id,
        "assignment_id": assessment["data"]["assignment_id"],
        "overall_status": final.value,
        "essay_count": count,
        "completed_essay_count": len(passed),
        "failed_essay_count": len(failed),
        "current_phase": None,
        "essays": _expected_essays(slots, spellchecks, assessment),
    }
    return Lifecycle(batch_id, user_id, tuple(events), expected)


def delivered(
    events: Sequence[JsonDict], rng: random.Random, *, out_of_order: float = 0.0, duplicated: float = 0.0
) -> list[JsonDict]:
    """`events` as a consumer may receive them: each one sent again later with probability `duplicated`,
    then each one moved to a random place with probability `out_of_order` (1.0: any order at all)."""
    sent = list(events)
    for event in [event for event in events if rng.random() < duplicated]:
        sent.insert(rng.randint(sent.index(event) + 1, len(sent)), event)
    for event in [event for event in sent if rng.random() < out_of_order]:
        sent.remove(event)
        sent.insert(rng.randint(0, len(sent)), event)
    return sent


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _of(failed: Sequence[str]) -> str:
    """The status of a phase with these failed essays."""
    return (BatchStatus.COMPLETED_WITH_FAILURES if failed else BatchStatus.COMPLETED_SUCCESSFULLY).value


def _spellcheck(rng: random.Random, batch_id: str, essay_id: str, fails: bool) -> JsonDict:
    if fails:
        return wire.spellcheck_result(batch_id, essay_id, status="spellcheck_failed", corrections=0)
    return wire.spellcheck_result(batch_id, essay_id, corrections=rng.randint(1, 30))


def _assessment(rng: random.Random, batch_id: str, course: str, essay_ids: Sequence[str]) -> JsonDict:
    """CJ ranks the essays together with one anchor essay of known grade; ranks count the anchor too."""
    anchor = f"anchor-{course}-{_uuid(rng)[:8]}"
    scores = {essay_id: round(rng.gauss(0, 1.2), 3) for essay_id in [*essay_ids, anchor]}
    low, high = min(scores.values()), max(scores.values())
    ranked = sorted(scores, key=lambda essay_id: (-scores[essay_id], essay_id))
    results = []
    for rank, essay_id in enumerate(ranked, start=1):
        normalized = round((scores[essay_id] - low) / (high - low), 3) if high > low else 0.5
        confidence = round(rng.uniform(0.45, 0.98), 2)
        results.append(
            wire.essay_result(
                essay_id,
                rank,
                is_anchor=essay_id == anchor,
                grade=next(grade for floor, grade in _GRADES if normalized >= floor),
                normalized_score=normalized,
                bt_score=scores[essay_id],
                confidence_score=confidence,
                confidence_label="HIGH" if confidence >= 0.8 else "MID" if confidence >= 0.6 else "LOW",
            )
        )
    metadata = {
        "anchor_essays_used": 1,
        "calibration_method": "anchor_essays",
        "comparison_count": len(scores) * (len(scores) - 1),
        "processing_duration_seconds": round(rng.uniform(20, 90), 1),
        "llm_temperature": 0.3,
    }
    assignment = f"assignment-{course.lower()}-{rng.randint(1, 40)}"
    return wire.assessment_result(batch_id, results, assignment_id=assignment, assessment_metadata=metadata)


def _expected_essays(slots: Sequence[JsonDict], spellchecks: Sequence[JsonDict], assessment: JsonDict) -> list[Any]:
    ranked = {result["essay_id"]: result for result in assessment["data"]["essay_results"]}
    essays = []
    for slot, spellcheck in zip(slots, spellchecks, strict=True):
        essay_id, result = slot["data"]["essay_id"], spellcheck["data"]
        cj = ranked.get(essay_id)
        essays.append(
            {
                "essay_id": essay_id,
                "filename": slot["data"]["original_file_name"],
                "file_upload_id": slot["data"]["file_upload_id"],
                "spellcheck_status": "failed" if "failed" in result["status"] else "completed",
                "spellcheck_correction_count": result["corrections_made"],
                "spellcheck_corrected_text_storage_id": result["corrected_text_storage_id"],
                "cj_assessment_status": "completed" if cj else None,
                "cj_rank": cj and cj["rank"],
                "cj_score": cj and cj["bt_score"],
                "cj_normalized_score": cj and cj["normalized_score"],
                "cj_letter_grade": cj and cj["letter_grade"],
                "cj_confidence_score": cj and cj["confidence_score"],
                "cj_confidence_label": cj and cj["confidence_label"],
            }
        )
    return sorted(essays, key=lambda essay: str(essay["essay_id"]))
