"""The read model's one owner: folded facts → the batch and essay views the API shows.

Every value the API answers with is computed here, once, when a change is written; the stores keep
these views as rows and the read side only selects and shapes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult, EssayResult

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EssayView:
    essay_id: str
    filename: str | None
    file_upload_id: str | None
    text_storage_id: str | None
    spellcheck_status: str | None
    spellcheck_correction_count: int | None
    spellcheck_corrected_text_storage_id: str | None
    spellcheck_metrics: dict[str, Any] | None
    spellcheck_error_detail: dict[str, Any] | None
    cj_assessment_status: str | None
    cj_rank: int | None
    cj_score: float | None
    cj_normalized_score: float | None
    cj_letter_grade: str | None
    cj_confidence_score: float | None
    cj_confidence_label: str | None
    cj_assessment_error_detail: dict[str, Any] | None
    last_updated: datetime


@dataclass(frozen=True)
class BatchView:
    batch_id: str
    is_registered: bool
    user_id: str | None
    org_id: str | None
    class_id: str | None
    course_code: str | None
    assignment_id: str | None
    status: str
    client_status: str
    essay_count: int
    completed_essay_count: int
    failed_essay_count: int
    current_phase: str | None
    student_prompt_ref: dict[str, Any] | None
    phase_summaries: dict[str, Any]
    created_at: datetime
    last_updated: datetime
    processing_started_at: datetime | None
    processing_completed_at: datetime | None


def project_batch(batch: BatchResult) -> BatchView:
    registration = batch.registration
    status = rules.derive_status(batch)
    completed, failed = rules.derive_essay_counts(batch)
    current_phase = rules.derive_current_phase(batch)
    return BatchView(
        batch_id=batch.batch_id,
        is_registered=registration is not None,
        user_id=registration.user_id if registration else None,
        org_id=registration.org_id if registration else None,
        class_id=registration.class_id if registration else None,
        course_code=registration.course_code.value if registration else None,
        assignment_id=batch.assignment.assignment_id if batch.assignment else None,
        status=status.value,
        client_status=rules.derive_client_status(status).value,
        essay_count=rules.derive_essay_count(batch),
        completed_essay_count=completed,
        failed_essay_count=failed,
        current_phase=current_phase.value if current_phase else None,
        student_prompt_ref=registration.student_prompt_ref if registration else None,
        phase_summaries={
            phase.value: {
                "phase_status": summary.phase_status.value,
                "processed_count": summary.processed_count,
                "failed_count": summary.failed_count,
                "reported_at": summary.stamp.at.isoformat(),
            }
            for phase, summary in batch.phases.items()
        },
        created_at=registration.stamp.at if registration else (batch.last_updated or EPOCH),
        last_updated=batch.last_updated or EPOCH,
        processing_started_at=batch.processing_started_at,
        processing_completed_at=rules.derive_processing_completed_at(batch),
    )


def project_essay(essay: EssayResult) -> EssayView:
    slot, spell, spell_progress, cj, cj_progress = (
        essay.slot,
        essay.spellcheck,
        essay.spellcheck_progress,
        essay.cj,
        essay.cj_progress,
    )
    return EssayView(
        essay_id=essay.essay_id,
        filename=slot.original_file_name if slot else None,
        file_upload_id=slot.file_upload_id if slot else None,
        text_storage_id=slot.text_storage_id if slot else None,
        spellcheck_status=spell_progress.stage.value if spell_progress else None,
        spellcheck_correction_count=spell.correction_count if spell else None,
        spellcheck_corrected_text_storage_id=spell.corrected_text_storage_id if spell else None,
        spellcheck_metrics=spell.metrics if spell else None,
        spellcheck_error_detail=spell_progress.error_detail if spell_progress else None,
        cj_assessment_status=cj_progress.stage.value if cj_progress else None,
        cj_rank=cj.rank if cj else None,
        cj_score=cj.bt_score if cj else None,
        cj_normalized_score=cj.normalized_score if cj else None,
        cj_letter_grade=cj.letter_grade if cj else None,
        cj_confidence_score=cj.confidence_score if cj else None,
        cj_confidence_label=cj.confidence_label.value if cj else None,
        cj_assessment_error_detail=cj_progress.error_detail if cj_progress else None,
        last_updated=essay.last_updated or EPOCH,
    )
