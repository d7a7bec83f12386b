"""Property tests of the pure rules (brief, rule 1): order and duplicates cannot change the read model."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common_core import events
from common_core.enums import BatchClientStatus, BatchStatus, PhaseName
from common_core.envelope import EventEnvelope
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import TERMINAL_STATUSES, BatchResult, Stamp
from result_aggregator_service.service_layer.handlers import stamp_of
from result_aggregator_service.tests.contract import sample_envelopes as s
from result_aggregator_service.tests.unit.folding import apply, at, decoded, fold

B = "batch-1"
ESSAY_POOL = ["e1", "e2", "e3", "e4"]
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

essay_ids = st.lists(st.sampled_from(ESSAY_POOL), unique=True, max_size=4)
seconds = st.integers(min_value=0, max_value=4)  # a narrow range, so timestamps often tie


def _registration(draw: st.DrawFn) -> dict[str, Any]:
    user = draw(st.sampled_from(["u1", "u2"]))
    return s.batch_registered(B, draw(essay_ids), user_id=user, course_code=draw(st.sampled_from(["ENG5", "SV1"])))


def _slot(draw: st.DrawFn) -> dict[str, Any]:
    return s.slot_assigned(B, draw(st.sampled_from(ESSAY_POOL)), file_name=draw(st.sampled_from(["a.docx", "b.docx"])))


def _phase_outcome(draw: st.DrawFn) -> dict[str, Any]:
    return s.phase_outcome(
        B,
        draw(essay_ids),
        draw(essay_ids),  # may overlap the processed ones: the rules must still be deterministic
        phase_name=draw(st.sampled_from(["spellcheck", "cj_assessment", "nlp"])),
        phase_status=draw(st.sampled_from(list(BatchStatus))).value,
    )


def _spellcheck(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(["spellchecked_success", "spellcheck_failed", "spellchecking_in_progress"]))
    essay_id = draw(st.sampled_from(ESSAY_POOL))
    return s.spellcheck_result(B, essay_id, status=status, corrections=draw(st.integers(1, 5)))


def _assessment(draw: st.DrawFn) -> dict[str, Any]:
    results = [
        s.essay_result(essay_id, rank=draw(st.integers(1, 4)), grade=draw(st.sampled_from(["A", "C+", "U"])))
        for essay_id in draw(essay_ids)
    ]
    if draw(st.booleans()):
        results.append(s.essay_result("anchor-1", rank=draw(st.integers(1, 4)), is_anchor=True))
    return s.assessment_result(B, results, assignment_id=draw(st.sampled_from([None, "a1", "a2"])))


def _completion(draw: st.DrawFn) -> dict[str, Any]:
    final_status = draw(st.sampled_from(list(BatchStatus))).value
    return s.pipeline_completed(
        B, final_status=final_status, successful=draw(st.integers(-2, 6)), failed=draw(st.integers(-2, 6))
    )


@st.composite
def batch_events(draw: st.DrawFn, min_registrations: int = 0) -> list[EventEnvelope[Any]]:
    """One batch's events in delivery order: each with a unique id and a timestamp that may tie."""
    samples: list[dict[str, Any]] = []
    samples += [_registration(draw) for _ in range(draw(st.integers(min_registrations, 3)))]
    samples += [_slot(draw) for _ in range(draw(st.integers(0, 3)))]
    samples += [_phase_outcome(draw) for _ in range(draw(st.integers(0, 3)))]
    samples += [_spellcheck(draw) for _ in range(draw(st.integers(0, 3)))]
    samples += [_assessment(draw) for _ in range(draw(st.integers(0, 2)))]
    samples += [_completion(draw) for _ in range(draw(st.integers(0, 2)))]
    ids = draw(st.lists(st.uuids(version=4), min_size=len(samples), max_size=len(samples), unique=True))
    for sample, event_id in zip(samples, ids, strict=True):
        sample["event_id"] = str(event_id)
        sample["event_timestamp"] = s.iso(at(draw(seconds)))
    return [decoded(sample) for sample in samples]


@st.composite
def redelivered(draw: st.DrawFn, envelopes: list[EventEnvelope[Any]]) -> list[EventEnvelope[Any]]:
    """The same events in a random order, some of them more than once."""
    duplicates = draw(st.lists(st.sampled_from(envelopes), max_size=4)) if envelopes else []
    return draw(st.permutations(envelopes + duplicates))


def _terminal_stamp(envelope: EventEnvelope[Any]) -> tuple[Stamp, BatchStatus] | None:
    data = envelope.data
    status = data.final_status if isinstance(data, events.BatchPipelineCompletedV1) else None
    if isinstance(data, events.ELSBatchPhaseOutcomeV1) and data.phase_status is BatchStatus.FAILED_CRITICALLY:
        status = data.phase_status
    return (stamp_of(envelope), status) if status in TERMINAL_STATUSES else None


@PROPERTY_SETTINGS
@given(data=st.data(), envelopes=batch_events())
def test_any_order_with_duplicates_gives_the_read_model_of_in_order_delivery(
    data: st.DataObject, envelopes: list[EventEnvelope[Any]]
) -> None:
    shuffled = data.draw(redelivered(envelopes))
    assert fold(shuffled) == fold(envelopes)


@PROPERTY_SETTINGS
@given(data=st.data(), envelopes=batch_events())
def test_a_terminal_status_never_regresses_and_the_latest_terminal_fact_wins(
    data: st.DataObject, envelopes: list[EventEnvelope[Any]]
) -> None:
    batch, terminal_facts = BatchResult(B), []
    for envelope in data.draw(redelivered(envelopes)):
        batch = apply(batch, envelope)
        if (terminal := _terminal_stamp(envelope)) is not None:
            terminal_facts.append(terminal)
        if terminal_facts:
            assert rules.derive_status(batch) is max(terminal_facts)[1]
            assert rules.derive_current_phase(batch) is None


@PROPERTY_SETTINGS
@given(data=st.data(), envelopes=batch_events())
def test_essay_counts_stay_within_the_essay_count_after_every_event(
    data: st.DataObject, envelopes: list[EventEnvelope[Any]]
) -> None:
    batch = BatchResult(B)
    for envelope in data.draw(redelivered(envelopes)):
        batch = apply(batch, envelope)
        completed, failed = rules.derive_essay_counts(batch)
        assert completed >= 0
        assert failed >= 0
        assert completed + failed <= rules.derive_essay_count(batch)


@PROPERTY_SETTINGS
@given(envelopes=batch_events())
def test_current_phase_is_null_unless_processing_and_otherwise_an_unfinished_tracked_phase(
    envelopes: list[EventEnvelope[Any]],
) -> None:
    batch = fold(envelopes)
    phase = rules.derive_current_phase(batch)
    if rules.derive_client_status(rules.derive_status(batch)) is not BatchClientStatus.PROCESSING:
        assert phase is None
    elif phase is not None:
        assert phase in (PhaseName.SPELLCHECK, PhaseName.CJ_ASSESSMENT)
        assert batch.essays


@PROPERTY_SETTINGS
@given(data=st.data(), envelopes=batch_events(min_registrations=2))
def test_the_latest_registration_defines_the_batch_and_no_registration_moves_its_lifecycle(
    data: st.DataObject, envelopes: list[EventEnvelope[Any]]
) -> None:
    batch = BatchResult(B)
    for envelope in data.draw(redelivered(envelopes)):
        status_before = rules.derive_status(batch)
        batch = apply(batch, envelope)
        if isinstance(envelope.data, events.BatchEssaysRegistered):
            assert rules.derive_status(batch) is status_before
    latest = max((e for e in envelopes if isinstance(e.data, events.BatchEssaysRegistered)), key=stamp_of).data
    assert [essay.essay_id for essay in rules.derive_essays(batch)] == list(dict.fromkeys(latest.essay_ids))
    assert rules.derive_essay_count(batch) == max(latest.expected_essay_count, len(set(latest.essay_ids)))
    assert batch.registration is not None
    assert (batch.registration.user_id, batch.registration.course_code) == (latest.user_id, latest.course_code)
