"""The internal HTTP API's request and response models (section 3 of the brief); OpenAPI is built from these."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from common_core.enums import BatchClientStatus, BatchStatus, ConfidenceLabel, PhaseName, ProcessingStage

# ISO-8601 in UTC on the wire (pydantic writes a UTC datetime with a trailing `Z`)
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda moment: moment.astimezone(UTC))]

MAX_PAGE_SIZE = 100
MAX_OFFSET = 2**31 - 1  # beyond any real history; keeps the SQL OFFSET inside PostgreSQL's integer range


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class EssayResultResponse(_Response):
    essay_id: str
    filename: str | None = None
    file_upload_id: str | None = None
    spellcheck_status: ProcessingStage | None = None
    spellcheck_correction_count: int | None = None
    spellcheck_corrected_text_storage_id: str | None = None
    spellcheck_error_detail: dict[str, Any] | None = None
    cj_assessment_status: ProcessingStage | None = None
    cj_rank: int | None = None
    cj_score: float | None = Field(None, description="The Bradley-Terry score (bt_score)")
    cj_normalized_score: float | None = None
    cj_letter_grade: str | None = None
    cj_confidence_score: float | None = None
    cj_confidence_label: ConfidenceLabel | None = None
    cj_assessment_error_detail: dict[str, Any] | None = None
    last_updated: UtcDatetime


class EssayDetailResponse(EssayResultResponse):
    """One essay with everything the read model keeps of it: the batch status's essay item, plus its batch,
    its text's storage id and the spellchecker's correction metrics."""

    batch_id: str
    text_storage_id: str | None = None
    spellcheck_metrics: dict[str, Any] | None = None


class BatchStatusResponse(_Response):
    batch_id: str
    user_id: str
    assignment_id: str | None = None
    overall_status: BatchClientStatus
    essay_count: int
    completed_essay_count: int
    failed_essay_count: int
    requested_pipeline: str | None = None
    current_phase: PhaseName | None = None
    essays: list[EssayResultResponse]
    created_at: UtcDatetime
    last_updated: UtcDatetime
    processing_started_at: UtcDatetime | None = None
    processing_completed_at: UtcDatetime | None = None
    student_prompt_ref: dict[str, Any] | None = None


class Pagination(_Response):
    limit: int
    offset: int
    total: int = Field(description="Batches matching the filter, across all pages")


class UserBatchesResponse(_Response):
    batches: list[BatchStatusResponse] = Field(description="Newest first (created_at, then batch_id)")
    pagination: Pagination


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class UserBatchesQuery(BaseModel):
    """`?limit=20&offset=0&status=`: an empty status means no filter."""

    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    status: Annotated[BatchStatus | None, BeforeValidator(_blank_is_none)] = Field(
        None, description="An internal BatchStatus value to filter on"
    )


class ErrorResponse(_Response):
    """The one shape of every 4xx and 5xx answer."""

    error: str = Field(description="A stable, machine-readable code, e.g. invalid_parameter")
    message: str
    correlation_id: str


class DependencyHealth(_Response):
    """A dependency's state and how long the check took; why it failed is logged, never answered."""

    status: Literal["ok", "error"]
    latency_ms: float


class HealthResponse(_Response):
    """`ok`: everything answers; `degraded`: PostgreSQL answers but Redis or Kafka does not (still 200);
    `unavailable`: PostgreSQL does not (503)."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, DependencyHealth]
    database_circuit: Literal["closed", "open", "half_open"] = Field(
        description="The API's circuit breaker on its database path; open: queries answer 503 at once"
    )


class BatchStatusQuery(BaseModel):
    """Read-your-writes: `?wait_for_event=<your event's id>` (or the `X-Wait-For-Event` header) waits until
    the worker applied or parked that event, at most `wait_seconds` (default and maximum configured)."""

    wait_for_event: UUID | None = Field(None, description="The event_id of an event you published")
    wait_seconds: float | None = Field(
        None, gt=0, description="How long to wait at most (default 2; more than the configured maximum, 10, waits that)"
    )


# Header models only document (the routes read these headers themselves): optional, never null.
class WaitForEventHeaders(BaseModel):
    x_wait_for_event: UUID | SkipJsonSchema[None] = Field(None, description="The same as ?wait_for_event=")


class LiveFeedQuery(BaseModel):
    include: Literal["status"] | None = Field(None, description="`status`: each event carries the status body too")
    limit: int = Field(
        20, ge=1, le=MAX_PAGE_SIZE, description="User feed: how many of the newest batches are sent on connect"
    )


class LiveFeedHeaders(BaseModel):
    last_event_id: str | SkipJsonSchema[None] = Field(
        None, description="Resume: the id of the last event received (a version; on the user feed batch:version)"
    )


class BatchEvent(_Response):
    """`text/event-stream`. Each event: `id:` (batch feed: the version; user feed: `<batch id,
    percent-encoded>:<version>`), `event: batch`, `data:` this JSON. Comment lines (`: heartbeat`) keep an
    idle stream open."""

    batch_id: str
    version: int = Field(description="Bumped by every committed change")
    client_status: BatchClientStatus
    status: BatchStatusResponse | None = Field(None, description="With ?include=status")
