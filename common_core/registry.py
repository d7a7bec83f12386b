"""Which payload each consumed topic carries: routing is by topic, never by event_type."""

from functools import cache
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter

from common_core import events, topics
from common_core.envelope import EventEnvelope

PAYLOAD_TYPE_BY_TOPIC: Final[dict[str, type[BaseModel]]] = {
    topics.BATCH_ESSAYS_REGISTERED_TOPIC: events.BatchEssaysRegistered,
    topics.ESSAY_SLOT_ASSIGNED_TOPIC: events.EssaySlotAssignedV1,
    topics.BATCH_PHASE_OUTCOME_TOPIC: events.ELSBatchPhaseOutcomeV1,
    topics.SPELLCHECK_RESULTS_TOPIC: events.SpellcheckResultV1,
    topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: events.AssessmentResultV1,
    topics.BATCH_PIPELINE_COMPLETED_TOPIC: events.BatchPipelineCompletedV1,
}


@cache
def envelope_adapter(topic: str) -> TypeAdapter[EventEnvelope[Any]]:
    """The validator of `topic`'s envelope; KeyError for a topic we do not consume."""
    payload_type = PAYLOAD_TYPE_BY_TOPIC[topic]
    return TypeAdapter(EventEnvelope[payload_type])  # type: ignore[valid-type]


def decode_envelope(topic: str, raw: bytes) -> EventEnvelope[Any]:
    """Parse and validate one record value; raises KeyError or pydantic.ValidationError."""
    return envelope_adapter(topic).validate_json(raw)
