"""What a published event says (brief §6): its payload and its notification's, from the folded facts.

`domain/emissions.py` decides when an event is due and which fact completed it; this module only
shapes the content, reading facts that must be present for the event to be due.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from common_core.enums import BatchStatus, PhaseName, ProcessingStage
from common_core.events import SystemProcessingMetadata
from common_core.produced import (
    BatchAssessmentCompletedV1,
    BatchResultsReadyV1,
    EssayRanking,
    NotificationPriority,
    NotificationType,
    PhaseResultSummary,
)
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import TRACKED_PHASES, AssessmentJob, BatchResult, Registration, Stamp

Notice = tuple[NotificationType, NotificationPriority, dict[str, Any]]


class Announcement(StrEnum):
    RESULTS_READY = "results_ready"
    ASSESSMENT_COMPLETED = "assessment_completed"


def _head(batch: BatchResult, event: str, at: datetime) -> dict[str, Any]:
    metadata = SystemProcessingMetadata(
        entity_id=batch.batch_id, entity_type="batch", timestamp=at, event=event, error_info={}
    )
    return {"entity_id": batch.batch_id, "entity_type": "batch", "timestamp": at, "system_metadata": metadata}


def results_ready(batch: BatchResult, registration: Registration, completing: Stamp) -> BatchResultsReadyV1:
    status = rules.derive_status(batch)
    phase_results = {
        phase.value: PhaseResultSummary(
            phase_name=phase.value,
            status="completed_with_failures" if summary.failed_count else "completed",
            completed_count=summary.processed_count,
            failed_count=summary.failed_count,
        )
        for phase, summary in sorted(batch.phases.items(), key=lambda item: list(PhaseName).index(item[0]))
    }
    completed = sum(
        1
        for essay in rules.derive_essays(batch)
        if ProcessingStage.COMPLETED in (rules.stage_of(essay, phase) for phase in TRACKED_PHASES)
    )
    return BatchResultsReadyV1(
        **_head(batch, Announcement.RESULTS_READY.value, completing.at),
        status=status,
        batch_id=batch.batch_id,
        user_id=registration.user_id,
        total_essays=rules.derive_essay_count(batch),
        completed_essays=completed,
        phase_results=phase_results,
        overall_status=status,
        processing_duration_seconds=_processing_duration(batch),
    )


def _processing_duration(batch: BatchResult) -> float:
    """The pipeline's own figure; else from the first processing fact to the terminal one."""
    if batch.completion is not None:
        return batch.completion.processing_duration_seconds
    assert batch.terminal_status is not None
    started = batch.processing_started_at
    return max(0.0, (batch.terminal_status.stamp.at - started).total_seconds()) if started else 0.0


def assessment_completed(
    batch: BatchResult, registration: Registration, job_id: str, job: AssessmentJob, completing: Stamp
) -> BatchAssessmentCompletedV1:
    rankings = [
        EssayRanking(
            essay_id=r.essay_id,
            rank=r.rank,
            score=r.bt_score,
            letter_grade=r.letter_grade,
            confidence_score=r.confidence_score,
            confidence_label=r.confidence_label,
        )
        for r in job.rankings
    ]
    return BatchAssessmentCompletedV1(
        **_head(batch, Announcement.ASSESSMENT_COMPLETED.value, completing.at),
        status=BatchStatus.COMPLETED_SUCCESSFULLY,
        batch_id=batch.batch_id,
        user_id=registration.user_id,
        assessment_job_id=job_id,
        rankings_summary=rankings,
    )


def results_ready_notice(ready: BatchResultsReadyV1) -> Notice:
    phases = {name: summary.model_dump(exclude={"phase_name"}) for name, summary in ready.phase_results.items()}
    message = (
        f"Results of batch {ready.batch_id} are ready: {ready.completed_essays} of {ready.total_essays}"
        f" essays completed ({ready.overall_status.value})."
    )
    payload = {
        "batch_id": ready.batch_id,
        "total_essays": ready.total_essays,
        "completed_essays": ready.completed_essays,
        "overall_status": ready.overall_status.value,
        "processing_duration_seconds": ready.processing_duration_seconds,
        "phase_results": phases,
        "message": message,
    }
    return NotificationType.BATCH_RESULTS_READY, NotificationPriority.HIGH, payload


def assessment_completed_notice(
    completed: BatchAssessmentCompletedV1,
) -> Notice:
    count = len(completed.rankings_summary)
    payload = {
        "batch_id": completed.batch_id,
        "assessment_job_id": completed.assessment_job_id,
        "rankings_available": count > 0,
        "rankings_count": count,
        "message": f"Assessment {completed.assessment_job_id} of batch {completed.batch_id} is complete:"
        f" {count} essays ranked.",
    }
    return NotificationType.BATCH_ASSESSMENT_COMPLETED, NotificationPriority.STANDARD, payload
