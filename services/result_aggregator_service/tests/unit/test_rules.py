"""Example-based tests of the pure read-model rules (brief, section 2, rules 2-5)."""

from __future__ import annotations

from typing import Any

import pytest

from common_core.enums import BatchClientStatus, BatchStatus, ConfidenceLabel, CourseCode, PhaseName, ProcessingStage
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.service_layer.handlers import stamp_of
from result_aggregator_service.tests.contract import sample_envelopes as s
from result_aggregator_service.tests.unit.folding import at, decoded, fold_samples

B = "batch-1"
ESSAYS = ["e1", "e2", "e3"]
LOW_ID = "00000000-0000-4000-8000-000000000001"
HIGH_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"


def registered(seconds: float = 0) -> dict[str, Any]:
    return s.batch_registered(B, ESSAYS, user_id="teacher-7", course_code="SV2", event_timestamp=at(seconds))


def test_registration_creates_a_batch_awaiting_content_validation_with_one_essay_per_id() -> None:
    batch = fold_samples(registered())
    assert batch.is_registered
    assert batch.registration is not None
    assert (batch.registration.user_id, batch.registration.course_code) == ("teacher-7", CourseCode.SV2)
    assert batch.registration.expected_essay_count == 3
    assert batch.registration.student_prompt_ref == {
        "references": {"student_prompt_text": {"storage_id": "prompt-1", "path": ""}}
    }
    assert sorted(batch.essays) == ESSAYS
    assert rules.derive_status(batch) is BatchStatus.AWAITING_CONTENT_VALIDATION
    assert rules.derive_current_phase(batch) is None
    assert rules.derive_essay_count(batch) == 3
    assert rules.derive_essay_counts(batch) == (0, 0)
    assert batch.last_updated == at(0)
    assert batch.processing_started_at is None


def test_a_registration_with_a_negative_expected_essay_count_is_rejected() -> None:
    sample = registered()
    sample["data"]["expected_essay_count"] = -1
    with pytest.raises(rules.RejectedFact):
        fold_samples(sample)


def test_a_slot_assignment_records_the_essays_file_facts() -> None:
    slot = s.slot_assigned(B, "e2", file_name="anna.docx", event_timestamp=at(5))
    batch = fold_samples(registered(), slot)
    essay = batch.essays["e2"]
    assert essay.slot is not None
    assert essay.slot.original_file_name == "anna.docx"
    assert essay.slot.file_upload_id == slot["data"]["file_upload_id"]
    assert essay.slot.text_storage_id == slot["data"]["text_storage_id"]
    assert essay.last_updated == at(5)
    assert batch.essays["e1"].slot is None


def test_a_phase_outcome_completes_processed_essays_and_fails_failed_ones() -> None:
    outcome = s.phase_outcome(B, ["e1", "e2"], ["e3"], phase_status="processing_pipelines", event_timestamp=at(10))
    batch = fold_samples(registered(), outcome)
    stages = {essay_id: essay.spellcheck_progress.stage for essay_id, essay in batch.essays.items()}  # type: ignore[union-attr]
    assert stages == {"e1": ProcessingStage.COMPLETED, "e2": ProcessingStage.COMPLETED, "e3": ProcessingStage.FAILED}
    assert batch.essays["e3"].spellcheck_progress.error_detail["phase_name"] == "spellcheck"  # type: ignore[union-attr,index]
    assert batch.essays["e1"].cj_progress is None
    summary = batch.phases[PhaseName.SPELLCHECK]
    assert (summary.phase_status, summary.processed_count, summary.failed_count) == (
        BatchStatus.PROCESSING_PIPELINES,
        2,
        1,
    )
    assert rules.derive_status(batch) is BatchStatus.PROCESSING_PIPELINES
    assert batch.processing_started_at == at(10)
    assert rules.derive_essay_counts(batch) == (2, 1)


def test_a_cj_phase_outcome_sets_only_the_cj_stage() -> None:
    batch = fold_samples(registered(), s.phase_outcome(B, ["e1"], ["e2"], phase_name="cj_assessment"))
    assert batch.essays["e1"].cj_progress.stage is ProcessingStage.COMPLETED  # type: ignore[union-attr]
    assert batch.essays["e2"].cj_progress.stage is ProcessingStage.FAILED  # type: ignore[union-attr]
    assert batch.essays["e1"].spellcheck_progress is None


def test_a_phase_outcome_that_failed_critically_fails_the_batch() -> None:
    outcome = s.phase_outcome(B, [], ESSAYS, phase_status="failed_critically", event_timestamp=at(10))
    batch = fold_samples(registered(), outcome)
    assert rules.derive_status(batch) is BatchStatus.FAILED_CRITICALLY
    assert rules.derive_client_status(rules.derive_status(batch)) is BatchClientStatus.FAILED


def test_a_phase_outcome_of_an_untracked_phase_keeps_a_summary_but_no_essay_stage() -> None:
    batch = fold_samples(registered(), s.phase_outcome(B, ["e1"], phase_name="nlp"))
    assert PhaseName.NLP in batch.phases
    assert all(e.spellcheck_progress is None and e.cj_progress is None for e in batch.essays.values())
    assert rules.derive_status(batch) is BatchStatus.PROCESSING_PIPELINES


def test_a_successful_spellcheck_result_records_corrections_metrics_and_the_corrected_text() -> None:
    result = s.spellcheck_result(B, "e1", corrections=7, event_timestamp=at(3))
    essay = fold_samples(registered(), result).essays["e1"]
    assert essay.spellcheck_progress is not None
    assert essay.spellcheck is not None
    assert essay.spellcheck_progress.stage is ProcessingStage.COMPLETED
    assert essay.spellcheck_progress.error_detail is None
    assert essay.spellcheck.correction_count == 7
    assert essay.spellcheck.corrected_text_storage_id == result["data"]["corrected_text_storage_id"]
    assert essay.spellcheck.metrics["word_count"] == 250


def test_a_failed_spellcheck_result_records_the_error_as_structured_detail() -> None:
    essay = fold_samples(registered(), s.spellcheck_result(B, "e1", status="spellcheck_failed")).essays["e1"]
    assert essay.spellcheck_progress is not None
    assert essay.spellcheck_progress.stage is ProcessingStage.FAILED
    assert essay.spellcheck_progress.error_detail == {
        "error_code": "SPELLCHECK_ERROR",
        "error_message": "boom",
        "error_type": "x",
        "context": {},
    }


def test_a_failed_spellcheck_result_without_error_info_still_records_an_error() -> None:
    sample = s.spellcheck_result(B, "e1", status="spellcheck_failed")
    sample["data"]["system_metadata"]["error_info"] = {}
    essay = fold_samples(sample).essays["e1"]
    assert essay.spellcheck_progress.error_detail == {"error_type": "spellcheck_failed"}  # type: ignore[union-attr]


def test_an_assessment_result_records_every_cj_fact_of_each_essay() -> None:
    result = s.assessment_result(B, [s.essay_result("e1", rank=2, grade="C-"), s.essay_result("e2", rank=1)])
    batch = fold_samples(registered(), result)
    cj = batch.essays["e1"].cj
    assert cj is not None
    assert (cj.rank, cj.bt_score, cj.normalized_score, cj.letter_grade) == (2, 1.25, 0.75, "C-")
    assert (cj.confidence_score, cj.confidence_label) == (0.8, ConfidenceLabel.HIGH)
    assert batch.essays["e1"].cj_progress.stage is ProcessingStage.COMPLETED  # type: ignore[union-attr]
    assert batch.essays["e3"].cj is None
    assert batch.assignment is not None
    assert batch.assignment.assignment_id == "assignment-1"


def test_anchor_essays_in_an_assessment_result_are_not_stored() -> None:
    result = s.assessment_result(B, [s.essay_result("e1"), s.essay_result("anchor-9", rank=2, is_anchor=True)])
    batch = fold_samples(registered(), result)
    assert "anchor-9" not in batch.essays
    assert rules.derive_essay_count(batch) == 3


def test_pipeline_completion_sets_the_final_status_counts_and_completion_time() -> None:
    done = s.pipeline_completed(
        B, final_status="completed_with_failures", successful=2, failed=1, event_timestamp=at(60)
    )
    batch = fold_samples(registered(), s.phase_outcome(B, ESSAYS, event_timestamp=at(10)), done)
    assert rules.derive_status(batch) is BatchStatus.COMPLETED_WITH_FAILURES
    assert rules.derive_essay_counts(batch) == (2, 1)
    assert rules.derive_processing_completed_at(batch) == at(60)
    assert rules.derive_current_phase(batch) is None
    assert batch.completion is not None
    assert batch.completion.completed_phases == ("spellcheck", "cj_assessment")


def test_pipeline_counts_are_capped_by_the_essay_count() -> None:
    batch = fold_samples(registered(), s.pipeline_completed(B, successful=5, failed=4))
    assert rules.derive_essay_counts(batch) == (3, 0)


def test_negative_pipeline_counts_show_as_zero() -> None:
    batch = fold_samples(registered(), s.pipeline_completed(B, successful=-2, failed=5))
    assert rules.derive_essay_counts(batch) == (0, 3)


def test_late_phase_outcome_does_not_reopen_a_completed_batch() -> None:
    late = s.phase_outcome(B, [], ["e2"], phase_name="cj_assessment", event_timestamp=at(90))
    batch = fold_samples(registered(), s.pipeline_completed(B, event_timestamp=at(60)), late)
    assert rules.derive_status(batch) is BatchStatus.COMPLETED_SUCCESSFULLY
    assert batch.essays["e2"].cj_progress.stage is ProcessingStage.FAILED  # type: ignore[union-attr]
    assert batch.last_updated == at(90)


def test_a_late_registration_does_not_reopen_a_cancelled_batch() -> None:
    batch = fold_samples(s.pipeline_completed(B, final_status="cancelled", event_timestamp=at(1)), registered(50))
    assert rules.derive_status(batch) is BatchStatus.CANCELLED


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_latest_of_two_terminal_statuses_wins_in_any_order(order: tuple[int, int]) -> None:
    facts = [
        s.pipeline_completed(B, final_status="completed_successfully", event_timestamp=at(10)),
        s.pipeline_completed(B, final_status="cancelled", event_timestamp=at(20)),
    ]
    assert rules.derive_status(fold_samples(*(facts[i] for i in order))) is BatchStatus.CANCELLED


def test_results_for_a_batch_not_yet_registered_are_kept_and_show_after_registration() -> None:
    early = [
        s.slot_assigned(B, "e1", event_timestamp=at(1)),
        s.spellcheck_result(B, "e1", corrections=4, event_timestamp=at(2)),
        s.assessment_result(B, [s.essay_result("e2", rank=1)], event_timestamp=at(3)),
    ]
    before = fold_samples(*early)
    assert not before.is_registered
    assert sorted(before.essays) == ["e1", "e2"]
    after = fold_samples(*early, registered(10))
    assert after.is_registered
    assert sorted(after.essays) == ESSAYS
    assert after.essays["e1"].spellcheck.correction_count == 4  # type: ignore[union-attr]
    assert after.essays["e2"].cj.rank == 1  # type: ignore[union-attr]
    assert after.essays["e1"].slot is not None


def test_an_essay_outside_the_registration_is_kept_as_facts_but_not_counted_or_shown() -> None:
    batch = fold_samples(registered(), s.spellcheck_result(B, "stray", status="spellcheck_failed"))
    assert "stray" in batch.essays
    assert [essay.essay_id for essay in rules.derive_essays(batch)] == ESSAYS
    assert rules.derive_essay_count(batch) == 3
    assert rules.derive_essay_counts(batch) == (0, 0)


def test_a_corrected_registration_that_removes_an_essay_removes_it_from_the_batch() -> None:
    corrected = s.batch_registered(B, ["e1", "e3"], user_id="teacher-8", course_code="ENG6", event_timestamp=at(20))
    for order in ((registered(0), corrected), (corrected, registered(0))):
        batch = fold_samples(*order)
        assert [essay.essay_id for essay in rules.derive_essays(batch)] == ["e1", "e3"]
        assert rules.derive_essay_count(batch) == 2
        assert batch.registration is not None
        assert (batch.registration.user_id, batch.registration.course_code) == ("teacher-8", CourseCode.ENG6)


def test_a_removed_essays_results_no_longer_count_once_a_corrected_registration_drops_it() -> None:
    corrected = s.batch_registered(B, ["e1", "e3"], event_timestamp=at(20))
    outcome = s.phase_outcome(B, ["e1"], ["e2"], event_timestamp=at(10))
    batch = fold_samples(registered(0), outcome, corrected)
    assert rules.derive_essay_counts(batch) == (1, 0)  # e2 failed, but it is no longer the batch's
    assert rules.derive_current_phase(batch) is PhaseName.SPELLCHECK  # e3 still owes spellcheck


def test_a_re_sent_registration_does_not_move_a_processing_batch_back_to_pending_content() -> None:
    outcome = s.phase_outcome(B, ESSAYS, event_timestamp=at(10))
    batch = fold_samples(registered(0), outcome, registered(30))
    assert rules.derive_status(batch) is BatchStatus.PROCESSING_PIPELINES
    assert rules.derive_client_status(rules.derive_status(batch)) is BatchClientStatus.PROCESSING
    assert batch.last_updated == at(30)


@pytest.mark.parametrize(
    ("later_timestamp", "winner"),
    [(True, "later.docx"), (False, "high-id.docx")],
    ids=["latest event_timestamp wins", "on a tie the greater event_id wins"],
)
@pytest.mark.parametrize("reverse", [False, True], ids=["in order", "reversed"])
def test_conflicting_values_resolve_by_timestamp_then_event_id(
    later_timestamp: bool, winner: str, reverse: bool
) -> None:
    first = s.slot_assigned(B, "e1", file_name="high-id.docx", event_id=HIGH_ID, event_timestamp=at(5))
    second_name = "later.docx" if later_timestamp else "low-id.docx"
    second = s.slot_assigned(
        B, "e1", file_name=second_name, event_id=LOW_ID, event_timestamp=at(6 if later_timestamp else 5)
    )
    ordered = [second, first] if reverse else [first, second]
    assert fold_samples(*ordered).essays["e1"].slot.original_file_name == winner  # type: ignore[union-attr]


def test_applying_the_same_event_twice_changes_nothing() -> None:
    outcome = decoded(s.phase_outcome(B, ["e1"], ["e2"], event_timestamp=at(4)))
    once = rules.apply_phase_outcome(BatchResult(B), outcome.data, stamp_of(outcome))
    twice = rules.apply_phase_outcome(once, outcome.data, stamp_of(outcome))
    assert twice == once


def test_processing_started_at_is_the_earliest_processing_fact() -> None:
    batch = fold_samples(
        registered(0),
        s.phase_outcome(B, ESSAYS, event_timestamp=at(30)),
        s.spellcheck_result(B, "e1", event_timestamp=at(20)),
        s.assessment_result(B, [s.essay_result("e1")], event_timestamp=at(40)),
    )
    assert batch.processing_started_at == at(20)
    assert batch.last_updated == at(40)
