"""Kafka topic names the Result Aggregator consumes and publishes. Spelled once, here."""

from typing import Final

BATCH_ESSAYS_REGISTERED_TOPIC: Final = "huleedu.batch.essays.registered.v1"
ESSAY_SLOT_ASSIGNED_TOPIC: Final = "huleedu.els.essay.slot.assigned.v1"
BATCH_PHASE_OUTCOME_TOPIC: Final = "huleedu.els.batch.phase.outcome.v1"
SPELLCHECK_RESULTS_TOPIC: Final = "huleedu.essay.spellcheck.results.v1"
ASSESSMENT_RESULT_PUBLISHED_TOPIC: Final = "huleedu.assessment.result.published.v1"
BATCH_PIPELINE_COMPLETED_TOPIC: Final = "huleedu.batch.pipeline.completed.v1"

CONSUMED_TOPICS: Final = (
    BATCH_ESSAYS_REGISTERED_TOPIC,
    ESSAY_SLOT_ASSIGNED_TOPIC,
    BATCH_PHASE_OUTCOME_TOPIC,
    SPELLCHECK_RESULTS_TOPIC,
    ASSESSMENT_RESULT_PUBLISHED_TOPIC,
    BATCH_PIPELINE_COMPLETED_TOPIC,
)

# published by this service (brief §6), from its outbox
BATCH_RESULTS_READY_TOPIC: Final = "huleedu.ras.batch.results.ready.v1"
BATCH_ASSESSMENT_COMPLETED_TOPIC: Final = "huleedu.ras.batch.assessment.completed.v1"
TEACHER_NOTIFICATION_REQUESTED_TOPIC: Final = "huleedu.notification.teacher.requested.v1"

PRODUCED_TOPICS: Final = (
    BATCH_RESULTS_READY_TOPIC,
    BATCH_ASSESSMENT_COMPLETED_TOPIC,
    TEACHER_NOTIFICATION_REQUESTED_TOPIC,
)
