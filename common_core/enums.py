"""Enumerations shared by the wire contracts (values fixed by the producers)."""

from enum import StrEnum


class PhaseName(StrEnum):
    SPELLCHECK = "spellcheck"
    AI_FEEDBACK = "ai_feedback"
    CJ_ASSESSMENT = "cj_assessment"
    NLP = "nlp"
    STUDENT_MATCHING = "student_matching"


class BatchStatus(StrEnum):
    AWAITING_CONTENT_VALIDATION = "awaiting_content_validation"
    CONTENT_INGESTION_FAILED = "content_ingestion_failed"
    AWAITING_PIPELINE_CONFIGURATION = "awaiting_pipeline_configuration"
    READY_FOR_PIPELINE_EXECUTION = "ready_for_pipeline_execution"
    PROCESSING_PIPELINES = "processing_pipelines"
    AWAITING_STUDENT_VALIDATION = "awaiting_student_validation"
    STUDENT_VALIDATION_COMPLETED = "student_validation_completed"
    VALIDATION_TIMEOUT_PROCESSED = "validation_timeout_processed"
    COMPLETED_SUCCESSFULLY = "completed_successfully"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED_CRITICALLY = "failed_critically"
    CANCELLED = "cancelled"


class ProcessingStage(StrEnum):
    """Stage of one essay in one phase."""

    PENDING = "pending"
    INITIALIZED = "initialized"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BatchClientStatus(StrEnum):
    """What the API shows callers."""

    PENDING_CONTENT = "pending_content"
    READY = "ready"
    PROCESSING = "processing"
    COMPLETED_SUCCESSFULLY = "completed_successfully"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CourseCode(StrEnum):
    ENG5 = "ENG5"
    ENG6 = "ENG6"
    ENG7 = "ENG7"
    SV1 = "SV1"
    SV2 = "SV2"
    SV3 = "SV3"


class ConfidenceLabel(StrEnum):
    HIGH = "HIGH"
    MID = "MID"
    LOW = "LOW"
