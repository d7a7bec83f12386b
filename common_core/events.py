"""Payloads of the consumed topics, exactly as the producers define them."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from common_core.enums import BatchStatus, ConfidenceLabel, CourseCode, PhaseName
from common_core.envelope import ContractModel, JsonObject

UnitInterval = Annotated[float, Field(ge=0.0, le=1.0)]


class SystemProcessingMetadata(ContractModel):
    entity_id: str
    entity_type: str
    parent_id: str | None = None
    timestamp: datetime
    processing_stage: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    event: str | None = None
    error_info: JsonObject


class StorageReference(ContractModel):
    storage_id: str
    path: str


class StorageReferenceMetadata(ContractModel):
    references: dict[str, StorageReference]


class BatchEssaysRegistered(ContractModel):
    event: Literal["batch.essays.registered"] = "batch.essays.registered"
    entity_id: str
    expected_essay_count: int
    essay_ids: list[str]
    metadata: SystemProcessingMetadata
    course_code: CourseCode
    student_prompt_ref: StorageReferenceMetadata | None = None
    user_id: str
    org_id: str | None = None
    class_id: str | None = None


class EssaySlotAssignedV1(ContractModel):
    event: Literal["essay.slot.assigned"] = "essay.slot.assigned"
    batch_id: str
    essay_id: str
    file_upload_id: str
    text_storage_id: str
    original_file_name: str
    correlation_id: UUID
    timestamp: datetime


class ProcessedEssay(ContractModel):
    essay_id: str
    text_storage_id: str
    spellcheck_metrics: JsonObject | None = None


class ELSBatchPhaseOutcomeV1(ContractModel):
    batch_id: str
    phase_name: PhaseName
    phase_status: BatchStatus
    processed_essays: list[ProcessedEssay]
    failed_essay_ids: list[str]
    correlation_id: UUID


class CorrectionMetrics(ContractModel):
    total_corrections: int
    l2_dictionary_corrections: int
    spellchecker_corrections: int
    word_count: int
    correction_density: float


class _SpellcheckResult(ContractModel):
    """What every schema version of the spellcheck result has in common."""

    event_name: str
    entity_id: str
    entity_type: str | None = None
    parent_id: str | None = None
    timestamp: datetime
    status: str
    system_metadata: SystemProcessingMetadata
    batch_id: str
    correlation_id: str
    user_id: str | None = None
    correction_metrics: CorrectionMetrics
    original_text_storage_id: str
    corrected_text_storage_id: str | None = None
    processing_duration_ms: int
    processor_version: str


class SpellcheckResultV1(_SpellcheckResult):
    """The spellcheck result at envelope schema_version 1 (the default)."""

    corrections_made: int


class SpellcheckResultV1Schema2(_SpellcheckResult):
    """The spellcheck result at envelope schema_version 2: `corrections_made` is renamed `correction_count`,
    and `language` (the BCP 47 tag of the language the text was checked in) is added."""

    correction_count: int
    language: str


class EssayResultV1(ContractModel):
    essay_id: str
    normalized_score: UnitInterval
    letter_grade: Annotated[str, Field(pattern=r"^([A-F][+-]?|U)$")]
    confidence_score: UnitInterval
    confidence_label: ConfidenceLabel
    bt_score: float
    rank: Annotated[int, Field(gt=0)]
    is_anchor: bool = False
    feedback_uri: str | None = None
    metrics_uri: str | None = None
    display_name: str | None = None


class AssessmentResultV1(ContractModel):
    event_name: Literal["assessment.result.published"] = "assessment.result.published"
    entity_id: str | None = None
    entity_type: str | None = None
    parent_id: str | None = None
    timestamp: datetime
    batch_id: str
    cj_assessment_job_id: str
    assignment_id: Annotated[str, Field(max_length=100)] | None = None
    assessment_method: str
    model_used: str
    model_provider: str
    model_version: str | None = None
    essay_results: list[EssayResultV1]
    assessment_metadata: JsonObject
    assessed_at: datetime


class BatchPipelineCompletedV1(ContractModel):
    event: Literal["batch.pipeline.completed"] = "batch.pipeline.completed"
    batch_id: str
    completed_phases: list[str]
    final_status: BatchStatus
    processing_duration_seconds: float
    successful_essay_count: int
    failed_essay_count: int
    correlation_id: UUID
    metadata: SystemProcessingMetadata
