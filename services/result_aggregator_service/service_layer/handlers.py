"""One handler per consumed topic: load the batch, fold the fact with its rule, save. Never commits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from pydantic import BaseModel

from common_core import topics
from common_core.envelope import EventEnvelope
from common_core.events import (
    AssessmentResultV1,
    BatchEssaysRegistered,
    BatchPipelineCompletedV1,
    ELSBatchPhaseOutcomeV1,
    EssaySlotAssignedV1,
    SpellcheckResultV1Schema2,
)
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult, Stamp
from result_aggregator_service.service_layer.ports import UnitOfWork

PayloadT = TypeVar("PayloadT", bound=BaseModel)
Handler = Callable[[EventEnvelope[Any], UnitOfWork], Awaitable[None]]


def batch_id_of(payload: BaseModel) -> str:
    """The batch an event belongs to: the registration names it `entity_id`, every other payload `batch_id`."""
    if isinstance(payload, BatchEssaysRegistered):
        return payload.entity_id
    return str(payload.batch_id)  # type: ignore[attr-defined]


def stamp_of(envelope: EventEnvelope[Any]) -> Stamp:
    return Stamp(envelope.event_timestamp, str(envelope.event_id), str(envelope.correlation_id))


async def _fold(
    envelope: EventEnvelope[PayloadT],
    uow: UnitOfWork,
    apply: Callable[[BatchResult, PayloadT, Stamp], BatchResult],
) -> None:
    batch = await uow.batches.get(batch_id_of(envelope.data))
    uow.batches.save(apply(batch, envelope.data, stamp_of(envelope)))


async def record_batch_registration(envelope: EventEnvelope[BatchEssaysRegistered], uow: UnitOfWork) -> None:
    await _fold(envelope, uow, rules.apply_batch_registration)


async def record_slot_assignment(envelope: EventEnvelope[EssaySlotAssignedV1], uow: UnitOfWork) -> None:
    await _fold(envelope, uow, rules.apply_slot_assignment)


async def record_phase_outcome(envelope: EventEnvelope[ELSBatchPhaseOutcomeV1], uow: UnitOfWork) -> None:
    await _fold(envelope, uow, rules.apply_phase_outcome)


async def record_spellcheck_result(envelope: EventEnvelope[SpellcheckResultV1Schema2], uow: UnitOfWork) -> None:
    await _fold(envelope, uow, rules.apply_spellcheck_result)


async def record_assessment_result(envelope: EventEnvelope[AssessmentResultV1], uow: UnitOfWork) -> None:
    await _fold(envelope, uow, rules.apply_assessment_result)


async def record_pipeline_completion(envelope: EventEnvelope[BatchPipelineCompletedV1], uow: UnitOfWork) -> None:
    await _fold(envelope, uow, rules.apply_pipeline_completion)


HANDLERS_BY_TOPIC: Final[dict[str, Handler]] = {
    topics.BATCH_ESSAYS_REGISTERED_TOPIC: record_batch_registration,
    topics.ESSAY_SLOT_ASSIGNED_TOPIC: record_slot_assignment,
    topics.BATCH_PHASE_OUTCOME_TOPIC: record_phase_outcome,
    topics.SPELLCHECK_RESULTS_TOPIC: record_spellcheck_result,
    topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: record_assessment_result,
    topics.BATCH_PIPELINE_COMPLETED_TOPIC: record_pipeline_completion,
}
