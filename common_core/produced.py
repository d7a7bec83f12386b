"""Payloads of the topics this service publishes (brief §6), in the shared envelope. Contracts only:
the rules that decide when they are due live in the service's domain."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from common_core.enums import BatchStatus, ConfidenceLabel
from common_core.envelope import ContractModel, JsonObject
from common_core.events import SystemProcessingMetadata


class NotificationType(StrEnum):
    BATCH_RESULTS_READY = "batch_results_ready"
    BATCH_ASSESSMENT_COMPLETED = "batch_assessment_completed"


class NotificationCategory(StrEnum):
    PROCESSING_RESULTS = "processing_results"


class NotificationPriority(StrEnum):
    CRITICAL = "critical"
    IMMEDIATE = "immediate"
    HIGH = "high"
    STANDARD = "standard"
    LOW = "low"


class ProcessingUpdate(ContractModel):
    """The common head of the two batch events."""

    event_name: str
    entity_id: str | None = None
    entity_type: str | None = None
    parent_id: str | None = None
    timestamp: datetime
    status: BatchStatus
    system_metadata: SystemProcessingMetadata


class PhaseResultSummary(ContractModel):
    phase_name: str
    status: Literal["completed", "completed_with_failures"]
    completed_count: int
    failed_count: int
    processing_time_seconds: float | None = None


class BatchResultsReadyV1(ProcessingUpdate):
    event_name: Literal["batch.results.ready"] = "batch.results.ready"
    batch_id: str
    user_id: str
    total_essays: int
    completed_essays: int
    phase_results: dict[str, PhaseResultSummary]
    overall_status: BatchStatus
    processing_duration_seconds: float


class EssayRanking(ContractModel):
    """One item of `rankings_summary`."""

    essay_id: str
    rank: int
    score: float  # the bt_score
    letter_grade: str
    confidence_score: float
    confidence_label: ConfidenceLabel


class BatchAssessmentCompletedV1(ProcessingUpdate):
    event_name: Literal["batch.assessment.completed"] = "batch.assessment.completed"
    batch_id: str
    user_id: str
    assessment_job_id: str
    rankings_summary: list[EssayRanking]


class TeacherNotificationRequestedV1(ContractModel):
    teacher_id: str
    notification_type: NotificationType
    category: NotificationCategory
    priority: NotificationPriority
    payload: JsonObject
    action_required: bool = False
    deadline_timestamp: datetime | None = None
    correlation_id: str
    batch_id: str
    class_id: str | None = None
    timestamp: datetime
