"""Sample envelopes for the tests: the hand-written wire envelopes of `result_aggregator_service.wire_events`
(there since the demo producer publishes them too) and one valid sample of any topic."""

from collections.abc import Callable

from common_core import topics
from result_aggregator_service.wire_events import (
    JsonDict,
    assessment_result,
    batch_registered,
    envelope,
    essay_result,
    iso,
    new_id,
    phase_outcome,
    pipeline_completed,
    slot_assigned,
    spellcheck_as_schema_2,
    spellcheck_result,
    system_metadata,
    to_bytes,
)

__all__ = [
    "JsonDict",
    "assessment_result",
    "batch_registered",
    "envelope",
    "essay_result",
    "iso",
    "new_id",
    "phase_outcome",
    "pipeline_completed",
    "sample_of",
    "slot_assigned",
    "spellcheck_as_schema_2",
    "spellcheck_result",
    "system_metadata",
    "to_bytes",
]


def sample_of(topic: str, batch_id: str | None = None) -> JsonDict:
    """One valid sample of `topic` with random ids."""
    batch_id = batch_id or new_id("batch-")
    essay_id = new_id("essay-")
    builders: dict[str, Callable[[], JsonDict]] = {
        topics.BATCH_ESSAYS_REGISTERED_TOPIC: lambda: batch_registered(batch_id, [essay_id]),
        topics.ESSAY_SLOT_ASSIGNED_TOPIC: lambda: slot_assigned(batch_id, essay_id),
        topics.BATCH_PHASE_OUTCOME_TOPIC: lambda: phase_outcome(batch_id, [essay_id]),
        topics.SPELLCHECK_RESULTS_TOPIC: lambda: spellcheck_result(batch_id, essay_id),
        topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC: lambda: assessment_result(batch_id, [essay_result(essay_id)]),
        topics.BATCH_PIPELINE_COMPLETED_TOPIC: lambda: pipeline_completed(batch_id),
    }
    return builders[topic]()
