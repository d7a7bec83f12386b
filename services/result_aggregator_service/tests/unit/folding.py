"""Fold sample envelopes through the pure rules, the way a handler would (no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from common_core import events
from common_core.envelope import EventEnvelope
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult, Stamp
from result_aggregator_service.service_layer.decoding import decode_event
from result_aggregator_service.service_layer.handlers import stamp_of
from result_aggregator_service.tests.contract import sample_envelopes as samples

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

APPLY_BY_PAYLOAD: dict[type[Any], Callable[[BatchResult, Any, Stamp], BatchResult]] = {
    events.BatchEssaysRegistered: rules.apply_batch_registration,
    events.EssaySlotAssignedV1: rules.apply_slot_assignment,
    events.ELSBatchPhaseOutcomeV1: rules.apply_phase_outcome,
    events.SpellcheckResultV1Schema2: rules.apply_spellcheck_result,  # older versions come upcast
    events.AssessmentResultV1: rules.apply_assessment_result,
    events.BatchPipelineCompletedV1: rules.apply_pipeline_completion,
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def decoded(sample: dict[str, Any]) -> EventEnvelope[Any]:
    """Our samples carry their topic in event_type; decode as the worker would, by topic (and upcast)."""
    return decode_event(sample["event_type"], samples.to_bytes(sample))


def apply(batch: BatchResult, envelope: EventEnvelope[Any]) -> BatchResult:
    return APPLY_BY_PAYLOAD[type(envelope.data)](batch, envelope.data, stamp_of(envelope))


def fold(envelopes: Iterable[EventEnvelope[Any]], batch_id: str = "batch-1") -> BatchResult:
    batch = BatchResult(batch_id)
    for envelope in envelopes:
        batch = apply(batch, envelope)
    return batch


def fold_samples(*sample_dicts: dict[str, Any], batch_id: str = "batch-1") -> BatchResult:
    return fold((decoded(sample) for sample in sample_dicts), batch_id)
