"""Which published events a batch's folded state makes due (brief §6), as the outbox records them.

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
from typing import Any, Final

from common_core.enums import BatchStatus, PhaseName
from common_core.envelope import ContractModel, EventEnvelope
from common_core.produced import (
    BatchAssessmentCompletedV1,
    BatchResultsReadyV1,
    NotificationCategory,
    TeacherNotificationRequestedV1,
)
from result_aggregator_service.domain.announcements import (
    Announcement,
    Notice,
    assessment_completed,
    assessment_completed_notice,
    results_ready,
    results_ready_notice,
)
from result_aggregator_service.domain.model import TRACKED_PHASES, BatchResult, Registration, Stamp

SOURCE_SERVICE: Final = "result_aggregator_service"
# the namespace of every published event id (a fixed, random UUID: changing it re-announces everything)
EVENT_ID_NAMESPACE: Final = uuid.UUID("6f1c3a52-9d0e-4c7b-8a4f-2e5b7d9c1a30")
_Envelope = EventEnvelope[Any]  # parametrised once: pydantic builds the class on every subscript
_EARLY_STATUSES = frozenset({BatchStatus.FAILED_CRITICALLY, BatchStatus.CANCELLED})


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
        completing = max(facts)
        ready = results_ready(batch, registration, completing)
        return _pair(
            batch, due, registration, completing, (topics.results_ready, ready), results_ready_notice(ready), topics
        )
    assert due.job_id is not None
    job = batch.assessments[due.job_id]
    completing = max(registration.stamp, job.stamp)
    completed = assessment_completed(batch, registration, due.job_id, job, completing)
    notice = assessment_completed_notice(completed)
    return _pair(batch, due, registration, completing, (topics.assessment_completed, completed), notice, topics)


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


# --- the records ---------------------------------------------------------------------------------


def _pair(
    batch: BatchResult,
    due: Due,
    registration: Registration,
    completing: Stamp,
    event: tuple[str, BatchResultsReadyV1 | BatchAssessmentCompletedV1],
    notice: Notice,
    topics: PublishedTopics,
) -> list[OutboxMessage]:
    """The event on its topic, keyed by batch, and its notification, keyed by teacher; both carry the
    completing fact's correlation id (the nil UUID for a fact stored before correlation ids were kept)."""
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
    topic, data = event
    return [
        _message(event_id_of(batch.batch_id, due.announcement, due.job_id), topic, batch.batch_id, data,
                 correlation_id, completing.at),
        _message(event_id_of(batch.batch_id, f"notification:{due.announcement}", due.job_id),
                 topics.teacher_notification, registration.user_id, notification, correlation_id, completing.at),
    ]  # fmt: skip


def _message(
    event_id: uuid.UUID, topic: str, key: str, data: ContractModel, correlation_id: uuid.UUID, at: datetime
) -> OutboxMessage:
    envelope = _Envelope(
        event_id=event_id,
        event_type=topic,
        event_timestamp=at,
        source_service=SOURCE_SERVICE,
        correlation_id=correlation_id,
        data=data,
    )
    timestamp = at.isoformat().replace("+00:00", "Z")  # as pydantic writes it in the envelope
    headers = (
        ("event_id", str(event_id)),
        ("event_type", topic),
        ("source_service", SOURCE_SERVICE),
        ("schema_version", str(envelope.schema_version)),
        ("occurred_at", timestamp),
        ("content_type", "application/json"),
    )
    return OutboxMessage(event_id, topic, key.encode(), envelope.model_dump_json().encode(), headers)
