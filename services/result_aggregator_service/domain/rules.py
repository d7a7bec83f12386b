"""Pure rules: fold one fact into a batch (`apply_*`) and compute what the API shows (`derive_*`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime

from common_core.enums import BatchClientStatus, BatchStatus, PhaseName, ProcessingStage
from common_core.events import (
    AssessmentResultV1,
    BatchEssaysRegistered,
    BatchPipelineCompletedV1,
    ELSBatchPhaseOutcomeV1,
    EssaySlotAssignedV1,
    SpellcheckResultV1Schema2,
)
from result_aggregator_service.domain.model import (
    TERMINAL_STATUSES,
    TRACKED_PHASES,
    AssessmentJob,
    AssignmentFact,
    BatchResult,
    CjOutcome,
    EssayResult,
    PhaseProgress,
    PhaseSummary,
    PipelineCompletion,
    Ranking,
    Registration,
    SlotAssignment,
    SpellcheckOutcome,
    Stamp,
    StatusFact,
    evolve,
    latest,
)

_CLIENT_STATUS = {
    BatchStatus.AWAITING_CONTENT_VALIDATION: BatchClientStatus.PENDING_CONTENT,
    BatchStatus.AWAITING_PIPELINE_CONFIGURATION: BatchClientStatus.PENDING_CONTENT,
    BatchStatus.CONTENT_INGESTION_FAILED: BatchClientStatus.FAILED,
    BatchStatus.FAILED_CRITICALLY: BatchClientStatus.FAILED,
    BatchStatus.READY_FOR_PIPELINE_EXECUTION: BatchClientStatus.READY,
    BatchStatus.PROCESSING_PIPELINES: BatchClientStatus.PROCESSING,
    BatchStatus.AWAITING_STUDENT_VALIDATION: BatchClientStatus.PROCESSING,
    BatchStatus.STUDENT_VALIDATION_COMPLETED: BatchClientStatus.PROCESSING,
    BatchStatus.VALIDATION_TIMEOUT_PROCESSED: BatchClientStatus.PROCESSING,
    BatchStatus.COMPLETED_SUCCESSFULLY: BatchClientStatus.COMPLETED_SUCCESSFULLY,
    BatchStatus.COMPLETED_WITH_FAILURES: BatchClientStatus.COMPLETED_WITH_FAILURES,
    BatchStatus.CANCELLED: BatchClientStatus.CANCELLED,
}
_FINISHED_STAGES = frozenset({ProcessingStage.COMPLETED, ProcessingStage.FAILED})


class RejectedFact(ValueError):
    """A well-formed event the rules cannot accept; the ingest parks it as `rejected`."""


# --- folding facts -----------------------------------------------------------------------------


def apply_batch_registration(batch: BatchResult, fact: BatchEssaysRegistered, stamp: Stamp) -> BatchResult:
    if fact.expected_essay_count < 0:
        raise RejectedFact(f"expected_essay_count is negative: {fact.expected_essay_count}")
    registration = Registration(
        user_id=fact.user_id,
        course_code=fact.course_code,
        expected_essay_count=fact.expected_essay_count,
        essay_ids=tuple(fact.essay_ids),
        org_id=fact.org_id,
        class_id=fact.class_id,
        student_prompt_ref=fact.student_prompt_ref.model_dump() if fact.student_prompt_ref else None,
        stamp=stamp,
    )
    # No status fact: a batch without one awaits content validation (derive_status), and a re-sent
    # registration must not move a batch that is further along back to that.
    batch = _with_essays(batch, fact.essay_ids, stamp, lambda essay: essay)
    return _touched(evolve(batch, registration=latest(batch.registration, registration)), stamp)


def apply_slot_assignment(batch: BatchResult, fact: EssaySlotAssignedV1, stamp: Stamp) -> BatchResult:
    slot = SlotAssignment(fact.file_upload_id, fact.text_storage_id, fact.original_file_name, stamp)
    batch = _with_essays(batch, [fact.essay_id], stamp, lambda essay: evolve(essay, slot=latest(essay.slot, slot)))
    return _touched(batch, stamp)


def apply_phase_outcome(batch: BatchResult, fact: ELSBatchPhaseOutcomeV1, stamp: Stamp) -> BatchResult:
    processed = tuple(essay.essay_id for essay in fact.processed_essays)
    summary = PhaseSummary(fact.phase_status, len(processed), len(fact.failed_essay_ids), stamp, processed)
    phases = {**batch.phases, fact.phase_name: latest(batch.phases.get(fact.phase_name), summary)}
    batch = evolve(batch, phases=phases)
    if fact.phase_name in TRACKED_PHASES:
        done = PhaseProgress(ProcessingStage.COMPLETED, None, stamp)
        failure = {
            "error_type": "phase_failed",
            "phase_name": fact.phase_name.value,
            "phase_status": fact.phase_status.value,
        }
        failed = PhaseProgress(ProcessingStage.FAILED, failure, stamp)
        batch = _with_progress(batch, fact.phase_name, [essay.essay_id for essay in fact.processed_essays], done)
        batch = _with_progress(batch, fact.phase_name, fact.failed_essay_ids, failed)
    failed_critically = fact.phase_status is BatchStatus.FAILED_CRITICALLY
    batch = _with_status(
        batch, BatchStatus.FAILED_CRITICALLY if failed_critically else BatchStatus.PROCESSING_PIPELINES, stamp
    )
    return _started(_touched(batch, stamp), stamp)


def apply_spellcheck_result(batch: BatchResult, fact: SpellcheckResultV1Schema2, stamp: Stamp) -> BatchResult:
    """The current schema version only (service_layer/schema_versions.py upcasts older ones)."""
    stage = _spellcheck_stage(fact.status)
    error = (
        (fact.system_metadata.error_info or {"error_type": fact.status}) if stage is ProcessingStage.FAILED else None
    )
    progress = PhaseProgress(stage, error, stamp)
    outcome = SpellcheckOutcome(
        correction_count=fact.correction_count,
        corrected_text_storage_id=fact.corrected_text_storage_id,
        metrics=fact.correction_metrics.model_dump(),
        stamp=stamp,
    )

    def fold(essay: EssayResult) -> EssayResult:
        return evolve(
            essay,
            spellcheck_progress=latest(essay.spellcheck_progress, progress),
            spellcheck=latest(essay.spellcheck, outcome),
        )

    return _started(_touched(_with_essays(batch, [fact.entity_id], stamp, fold), stamp), stamp)


def apply_assessment_result(batch: BatchResult, fact: AssessmentResultV1, stamp: Stamp) -> BatchResult:
    progress = PhaseProgress(ProcessingStage.COMPLETED, None, stamp)
    rankings = []
    for result in fact.essay_results:
        if result.is_anchor:  # calibration essays are not the batch's essays
            continue
        rankings.append(
            Ranking(
                result.essay_id,
                result.rank,
                result.bt_score,
                result.letter_grade,
                result.confidence_score,
                result.confidence_label,
            )
        )
        outcome = CjOutcome(
            rank=result.rank,
            bt_score=result.bt_score,
            normalized_score=result.normalized_score,
            letter_grade=result.letter_grade,
            confidence_score=result.confidence_score,
            confidence_label=result.confidence_label,
            stamp=stamp,
        )
        batch = _with_essays(
            batch, [result.essay_id], stamp, functools.partial(_with_cj, progress=progress, cj=outcome)
        )
    job = AssessmentJob(tuple(sorted(rankings, key=lambda r: (r.rank, r.essay_id))), stamp)
    job_id = fact.cj_assessment_job_id
    assessments = {**batch.assessments, job_id: latest(batch.assessments.get(job_id), job)}
    assignment = latest(batch.assignment, AssignmentFact(fact.assignment_id, stamp))
    batch = evolve(batch, assignment=assignment, assessments=assessments)
    return _started(_touched(batch, stamp), stamp)


def apply_pipeline_completion(batch: BatchResult, fact: BatchPipelineCompletedV1, stamp: Stamp) -> BatchResult:
    completion = PipelineCompletion(
        completed_phases=tuple(fact.completed_phases),
        final_status=fact.final_status,
        processing_duration_seconds=fact.processing_duration_seconds,
        successful_essay_count=fact.successful_essay_count,
        failed_essay_count=fact.failed_essay_count,
        stamp=stamp,
    )
    batch = _with_status(batch, fact.final_status, stamp)
    return _touched(evolve(batch, completion=latest(batch.completion, completion)), stamp)


# --- deriving what the API shows ---------------------------------------------------------------


def derive_status(batch: BatchResult) -> BatchStatus:
    """A terminal status, once known, beats every non-terminal one whatever its timestamp."""
    fact = batch.terminal_status or batch.open_status
    return fact.status if fact else BatchStatus.AWAITING_CONTENT_VALIDATION


def derive_client_status(status: BatchStatus) -> BatchClientStatus:
    return _CLIENT_STATUS[status]


def derive_essays(batch: BatchResult) -> list[EssayResult]:
    """The batch's essays: those of its latest registration, in its order. Facts about other essays
    (a result for an essay a corrected registration dropped) are kept but neither shown nor counted."""
    if batch.registration is None:
        return []
    essay_ids = dict.fromkeys(batch.registration.essay_ids)
    return [batch.essays.get(essay_id) or EssayResult(essay_id) for essay_id in essay_ids]


def derive_current_phase(batch: BatchResult) -> PhaseName | None:
    if derive_client_status(derive_status(batch)) is not BatchClientStatus.PROCESSING:
        return None
    essays = derive_essays(batch)
    for phase in TRACKED_PHASES:
        if any(_waits_for(essay, phase) for essay in essays):
            return phase
    return None


def _waits_for(essay: EssayResult, phase: PhaseName) -> bool:
    """An essay still owes `phase` unless it finished it or failed an earlier phase (it goes no further)."""
    earlier = TRACKED_PHASES[: TRACKED_PHASES.index(phase)]
    if any(stage_of(essay, p) is ProcessingStage.FAILED for p in earlier):
        return False
    return stage_of(essay, phase) not in _FINISHED_STAGES


def derive_essay_count(batch: BatchResult) -> int:
    expected = batch.registration.expected_essay_count if batch.registration else 0
    return max(expected, len(derive_essays(batch)))


def derive_essay_counts(batch: BatchResult) -> tuple[int, int]:
    """(completed, failed): the pipeline's own counts once it completed, else counted from the essays."""
    essay_count = derive_essay_count(batch)
    if batch.completion is not None:
        completed = max(0, min(batch.completion.successful_essay_count, essay_count))
        return completed, max(0, min(batch.completion.failed_essay_count, essay_count - completed))
    stages = [[stage_of(essay, phase) for phase in TRACKED_PHASES] for essay in derive_essays(batch)]
    failed = sum(1 for essay_stages in stages if ProcessingStage.FAILED in essay_stages)
    completed = sum(
        1
        for essay_stages in stages
        if ProcessingStage.COMPLETED in essay_stages
        and all(s is None or s in _FINISHED_STAGES for s in essay_stages)
        and ProcessingStage.FAILED not in essay_stages
    )
    return completed, failed


def derive_processing_completed_at(batch: BatchResult) -> datetime | None:
    return batch.completion.stamp.at if batch.completion else None


# --- helpers -----------------------------------------------------------------------------------


def stage_of(essay: EssayResult, phase: PhaseName) -> ProcessingStage | None:
    """The essay's stage in a tracked phase; None when nothing is known of it."""
    progress = essay.spellcheck_progress if phase is PhaseName.SPELLCHECK else essay.cj_progress
    return progress.stage if progress else None


def _spellcheck_stage(essay_status: str) -> ProcessingStage:
    if essay_status.endswith("success"):
        return ProcessingStage.COMPLETED
    if "failed" in essay_status:
        return ProcessingStage.FAILED
    return ProcessingStage.PROCESSING


def _with_cj(essay: EssayResult, progress: PhaseProgress, cj: CjOutcome) -> EssayResult:
    return evolve(essay, cj_progress=latest(essay.cj_progress, progress), cj=latest(essay.cj, cj))


def _with_status(batch: BatchResult, status: BatchStatus, stamp: Stamp) -> BatchResult:
    fact = StatusFact(status, stamp)
    if status in TERMINAL_STATUSES:
        return evolve(batch, terminal_status=latest(batch.terminal_status, fact))
    return evolve(batch, open_status=latest(batch.open_status, fact))


def _with_progress(
    batch: BatchResult, phase: PhaseName, essay_ids: Iterable[str], progress: PhaseProgress
) -> BatchResult:
    if phase is PhaseName.SPELLCHECK:
        return _with_essays(
            batch,
            essay_ids,
            progress.stamp,
            lambda e: evolve(e, spellcheck_progress=latest(e.spellcheck_progress, progress)),
        )
    return _with_essays(
        batch, essay_ids, progress.stamp, lambda e: evolve(e, cj_progress=latest(e.cj_progress, progress))
    )


def _with_essays(
    batch: BatchResult, essay_ids: Iterable[str], stamp: Stamp, fold: Callable[[EssayResult], EssayResult]
) -> BatchResult:
    essays = dict(batch.essays)
    for essay_id in essay_ids:
        essay = fold(essays.get(essay_id) or EssayResult(essay_id))
        essays[essay_id] = evolve(essay, last_updated=_max(essay.last_updated, stamp.at))
    return evolve(batch, essays=essays)


def _touched(batch: BatchResult, stamp: Stamp) -> BatchResult:
    return evolve(batch, last_updated=_max(batch.last_updated, stamp.at))


def _started(batch: BatchResult, stamp: Stamp) -> BatchResult:
    current = batch.processing_started_at
    return evolve(batch, processing_started_at=stamp.at if current is None else min(current, stamp.at))


def _max(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None else max(current, candidate)
