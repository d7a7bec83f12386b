"""The lifecycle generator: its events are valid wire envelopes and its expected state is what the rules fold."""

from __future__ import annotations

import random
from typing import Any

import pytest

from common_core.enums import PhaseName
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult, EssayResult
from result_aggregator_service.lifecycles import batch_lifecycle, delivered
from result_aggregator_service.tests.unit.folding import decoded, fold


def shown(batch: BatchResult) -> dict[str, Any]:
    """What the API shows of a folded batch, in the generator's expected shape."""
    completed, failed = rules.derive_essay_counts(batch)
    assert batch.registration is not None
    return {
        "batch_id": batch.batch_id,
        "user_id": batch.registration.user_id,
        "assignment_id": batch.assignment.assignment_id if batch.assignment else None,
        "overall_status": rules.derive_client_status(rules.derive_status(batch)).value,
        "essay_count": rules.derive_essay_count(batch),
        "completed_essay_count": completed,
        "failed_essay_count": failed,
        "current_phase": rules.derive_current_phase(batch),
        "essays": [shown_essay(batch.essays[essay_id]) for essay_id in sorted(batch.essays)],
    }


def shown_essay(essay: EssayResult) -> dict[str, Any]:
    spellcheck, cj, slot = essay.spellcheck, essay.cj, essay.slot
    assert spellcheck is not None and essay.spellcheck_progress is not None and slot is not None
    return {
        "essay_id": essay.essay_id,
        "filename": slot.original_file_name,
        "file_upload_id": slot.file_upload_id,
        "spellcheck_status": essay.spellcheck_progress.stage.value,
        "spellcheck_correction_count": spellcheck.correction_count,
        "spellcheck_corrected_text_storage_id": spellcheck.corrected_text_storage_id,
        "cj_assessment_status": essay.cj_progress.stage.value if essay.cj_progress else None,
        "cj_rank": cj and cj.rank,
        "cj_score": cj and cj.bt_score,
        "cj_normalized_score": cj and cj.normalized_score,
        "cj_letter_grade": cj and cj.letter_grade,
        "cj_confidence_score": cj and cj.confidence_score,
        "cj_confidence_label": cj and cj.confidence_label.value,
    }


@pytest.mark.parametrize("seed", range(20))
def test_a_reordered_lifecycle_with_duplicates_folds_into_its_expected_state(seed: int) -> None:
    rng = random.Random(seed)
    lifecycle = batch_lifecycle(rng, "teacher-1", spellcheck_failure_rate=0.3)
    events = delivered(lifecycle.events, rng, out_of_order=1.0, duplicated=0.3)
    assert shown(fold([decoded(event) for event in events], lifecycle.batch_id)) == lifecycle.expected


def test_the_anchor_essay_is_ranked_but_not_expected_among_the_batch_essays() -> None:
    lifecycle = batch_lifecycle(random.Random(7), "teacher-1", essay_count=4)
    (assessment,) = [e for e in lifecycle.events if e["event_type"].endswith("assessment.result.published.v1")]
    anchors = [r["essay_id"] for r in assessment["data"]["essay_results"] if r["is_anchor"]]
    assert len(anchors) == 1
    assert anchors[0] not in {essay["essay_id"] for essay in lifecycle.expected["essays"]}
    assert len(lifecycle.expected["essays"]) == 4


def test_spellcheck_failures_make_a_batch_complete_with_failures_and_skip_cj_for_those_essays() -> None:
    lifecycle = batch_lifecycle(random.Random(1), "teacher-1", essay_count=6, spellcheck_failure_rate=1.0)
    expected = lifecycle.expected
    failed = [essay for essay in expected["essays"] if essay["spellcheck_status"] == "failed"]
    assert expected["overall_status"] == "completed_with_failures"
    assert len(failed) == expected["failed_essay_count"] == 5  # the first essay always passes
    assert all(essay["cj_rank"] is None for essay in failed)
    outcome = decoded(lifecycle.events[-4]).data
    assert outcome.phase_name is PhaseName.SPELLCHECK and len(outcome.failed_essay_ids) == 5


def test_a_seeded_generator_repeats_its_choices_and_delivery_order() -> None:
    first, second = (batch_lifecycle(random.Random(3), "teacher-1") for _ in range(2))
    random_ids = {"file_upload_id", "spellcheck_corrected_text_storage_id"}
    assert first.batch_id == second.batch_id
    assert [{k: v for k, v in e.items() if k not in random_ids} for e in first.expected["essays"]] == [
        {k: v for k, v in e.items() if k not in random_ids} for e in second.expected["essays"]
    ]
    assert [e["event_type"] for e in delivered(first.events, random.Random(4), out_of_order=0.5)] == [
        e["event_type"] for e in delivered(second.events, random.Random(4), out_of_order=0.5)
    ]


def test_delivery_without_disorder_keeps_the_platform_order_and_duplicates_come_after_the_original() -> None:
    events = batch_lifecycle(random.Random(5), "teacher-1").events
    assert delivered(events, random.Random(0)) == list(events)
    sent = delivered(events, random.Random(0), duplicated=1.0)
    assert len(sent) == 2 * len(events)
    for event in events:
        first = sent.index(event)
        assert event in sent[first + 1 :]
