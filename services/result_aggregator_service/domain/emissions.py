"""Which published events a batch's folded state makes due (brief §6), and their exact content.

Every field comes from the folded facts, never from the clock or the arrival order:
- `event_id` is a UUIDv5 of (batch id, what it announces, CJ job id): a batch made due twice, or a
  re-publish after a crash, carries the same id, and the outbox keeps the first row of each id;
- `event_timestamp` and `correlation_id` are those of the completing fact: of the facts that made the
  event due, the one with the greatest stamp (event_timestamp, then event_id);
- the content reads only facts that must be present for the event to be due, so whichever micro-batch
  makes it due writes the same bytes. (Exception, by the brief's rule: a batch that failed critically or
  was cancelled is due as soon as it is registered and terminal; its phase results and completed essays
  are those known at that moment.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from common_core.enums import BatchStatus, PhaseName, ProcessingStage
from common_core.envelope import ContractModel, EventEnvelope
from common_core.events import SystemProcessingMetadata
from common_core.produced import (
    BatchAssessmentCompletedV1,
    BatchResultsReadyV1,
    EssayRanking,
    NotificationCategory,
    NotificationPriority,
    NotificationType,
    PhaseResultSummary,
    TeacherNotificationRequestedV1,
)
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import TRACKED_PHASES, AssessmentJob, BatchResult, Registration, Stamp

SOURCE_SERVICE: Final = "result_aggregator_service"
# the namespace of every published event id (a fixed, random UUID: changing it re-announces everything)
EVENT_ID_NAMESPACE: Final = uuid.UUID("6f1c3a52-9d0e-4c7b-8a4f-2e5b7d9c1a30")
_EARLY_STATUSES = frozenset({BatchStatus.FAILED_CRITICALLY, BatchStatus.CANCELLED})


class Announcement(StrEnum):
    RESULTS_READY = "results_ready"
    ASSESSMENT_COMPLETED = "assessment_completed"


@dataclass(frozen=True)
class PublishedTopics:
    results_ready: str
    assessment_completed: str
    teacher_notification: str


@dataclass(frozen=True)
class Due:
    """One announcement a batch's state makes due; `job_id` names the CJ job of an assessment."""

    announcement: Announcement
    job_id: str | None = None


@dataclass(frozen=True)
class OutboxMessage:
    """One Kafka record to publish: what an outbox row holds."""

    event_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes  # the JSON envelope
    headers: tuple[tuple[str, str], ...]


def event_id_of(batch_id: str, announcement: str, job_id: str | None = None) -> uuid.UUID:
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{batch_id}\x1f{announcement}\x1f{job_id or ''}")


def derive_due(batch: BatchResult) -> list[Due]:
    """What the batch's state makes due, results ready first, then the CJ jobs by id."""
    if batch.registration is None:
        return []
    due = [Due(Announcement.RESULTS_READY)] if _results_ready_facts(batch) is not None else []
    return due + [Due(Announcement.ASSESSMENT_COMPLETED, job_id) for job_id in sorted(batch.assessments)]


def derive_newly_due_messages(
    before: BatchResult | None, after: BatchResult, topics: PublishedTopics
) -> list[OutboxMessage]:
    """The messages `after` makes due that `before` (the committed state) did not: each was written
    when it first became due, so only a change can add one."""
    already = set(derive_due(before)) if before is not None else set()
    return [m for due in derive_due(after) if due not in already for m in derive_messages(after, due, topics)]


def derive_outbox_messages(
    pairs: Iterable[tuple[BatchResult | None, BatchResult]], topics: PublishedTopics
) -> list[OutboxMessage]:
    """Every message newly due in a unit of work's changed batches, (committed state, new state) each."""
    return [message for before, after in pairs for message in derive_newly_due_messages(before, after, topics)]


def derive_messages(batch: BatchResult, due: Due, topics: PublishedTopics) -> list[OutboxMessage]:
    """The event announcing `due` and its teacher notification."""
    registration = batch.registration
    assert registration is not None  # derive_due announces registered batches only
    if due.announcement is Announcement.RESULTS_READY:
        facts = _results_ready_facts(batch)
        assert facts is not None
        ready = _results_ready(batch, registration, max(facts))
        return _pair(batch, due, registration, topics.results_ready, ready, _results_notice(ready), topics)
    assert due.job_id is not None
    job = batch.assessments[due.job_id]
    completed = _assessment_completed(batch, registration, due.job_id, job)
    return _pair(
        batch, due, registration, topics.assessment_completed, completed, _assessment_notice(completed), topics
    )


# --- when results are ready ----------------------------------------------------------------------


def _results_ready_facts(batch: BatchResult) -> list[Stamp] | None:
    """The stamps of the facts that make results ready, or None while they are not (brief §6, rule 1)."""
    terminal, registration = batch.terminal_status, batch.registration
    if terminal is None or registration is None:
        return None
    stamps = [registration.stamp, terminal.stamp]
    if terminal.status in _EARLY_STATUSES:
        return stamps
    summaries = {phase.value: summary for phase, summary in batch.phases.items()}
    ran = summaries.keys() | set(batch.completion.completed_phases if batch.completion else ())
    for phase in sorted(ran):
        summary = summaries.get(phase)
        if summary is None:  # a phase the pipeline says it completed whose outcome has not arrived
            return None
        stamps.append(summary.stamp)
        for essay_id in summary.processed_essay_ids if phase in TRACKED_PHASES else ():
            result = _result_of(batch, essay_id, PhaseName(phase))
            if result is None:
                return None
            stamps.append(result)
    if batch.completion is not None:
        stamps.append(batch.completion.stamp)
    return stamps


def _result_of(batch: BatchResult, essay_id: str, phase: PhaseName) -> Stamp | None:
    essay = batch.essays.get(essay_id)
    outcome = None if essay is None else essay.spellcheck if phase is PhaseName.SPELLCHECK else essay.cj
    return outcome.stamp if outcome is not None else None


# --- content -------------------------------------------------------------------------------------


def _head(batch: BatchResult, event: str, at: datetime) -> dict[str, Any]:
    metadata = SystemProcessingMetadata(
        entity_id=batch.batch_id, entity_type="batch", timestamp=at, event=event, error_info={}
    )
    return {"entity_id": batch.batch_id, "entity_type": "batch", "timestamp": at, "system_metadata": metadata}


def _results_ready(batch: BatchResult, registration: Registration, completing: Stamp) -> BatchResultsReadyV1:
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


def _assessment_completed(
    batch: BatchResult, registration: Registration, job_id: str, job: AssessmentJob
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
        **_head(batch, Announcement.ASSESSMENT_COMPLETED.value, max(registration.stamp, job.stamp).at),
        status=BatchStatus.COMPLETED_SUCCESSFULLY,
        batch_id=batch.batch_id,
        user_id=registration.user_id,
        assessment_job_id=job_id,
        rankings_summary=rankings,
    )


def _results_notice(ready: BatchResultsReadyV1) -> tuple[NotificationType, NotificationPriority, dict[str, Any]]:
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


def _assessment_notice(
    completed: BatchAssessmentCompletedV1,
) -> tuple[NotificationType, NotificationPriority, dict[str, Any]]:
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


# --- the records ---------------------------------------------------------------------------------


def _pair(
    batch: BatchResult,
    due: Due,
    registration: Registration,
    topic: str,
    event: BatchResultsReadyV1 | BatchAssessmentCompletedV1,
    notice: tuple[NotificationType, NotificationPriority, dict[str, Any]],
    topics: PublishedTopics,
) -> list[OutboxMessage]:
    completing = _completing_stamp(batch, due)
    correlation_id = uuid.UUID(completing.correlation_id) if completing.correlation_id else uuid.UUID(int=0)
    kind, priority, payload = notice
    notification = TeacherNotificationRequestedV1(
        teacher_id=registration.user_id,
        notification_type=kind,
        category=NotificationCategory.PROCESSING_RESULTS,
        priority=priority,
        payload=payload,
        correlation_id=str(correlation_id),
        batch_id=batch.batch_id,
        class_id=registration.class_id,
        timestamp=completing.at,
    )
    return [
        _message(event_id_of(batch.batch_id, due.announcement, due.job_id), topic, batch.batch_id, event,
                 correlation_id, completing.at),
        _message(event_id_of(batch.batch_id, f"notification:{due.announcement}", due.job_id),
                 topics.teacher_notification, registration.user_id, notification, correlation_id, completing.at),
    ]  # fmt: skip


def _completing_stamp(batch: BatchResult, due: Due) -> Stamp:
    if due.announcement is Announcement.RESULTS_READY:
        return max(_results_ready_facts(batch) or ())
    assert batch.registration is not None and due.job_id is not None
    return max(batch.registration.stamp, batch.assessments[due.job_id].stamp)


def _message(
    event_id: uuid.UUID, topic: str, key: str, data: ContractModel, correlation_id: uuid.UUID, at: datetime
) -> OutboxMessage:
    envelope = EventEnvelope[Any](
        event_id=event_id,
        event_type=topic,
        event_timestamp=at,
        source_service=SOURCE_SERVICE,
        correlation_id=correlation_id,
        data=data,
    )
    timestamp = envelope.model_dump(mode="json", include={"event_timestamp"})["event_timestamp"]
    headers = (
        ("event_id", str(event_id)),
        ("event_type", topic),
        ("source_service", SOURCE_SERVICE),
        ("schema_version", str(envelope.schema_version)),
        ("occurred_at", timestamp),
        ("content_type", "application/json"),
    )
    return OutboxMessage(event_id, topic, key.encode(), envelope.model_dump_json().encode(), headers)
