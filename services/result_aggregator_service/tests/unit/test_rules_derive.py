"""Example-based tests of what the API shows: current_phase (brief, rule 5) and the client status (section 3)."""

from __future__ import annotations

import pytest

from common_core.enums import BatchClientStatus, BatchStatus, PhaseName, ProcessingStage
from result_aggregator_service.domain import rules
from result_aggregator_service.tests.brief_tables import CLIENT_STATUS
from result_aggregator_service.tests.contract import sample_envelopes as s
from result_aggregator_service.tests.unit.folding import at, fold_samples
from result_aggregator_service.tests.unit.test_rules import ESSAYS, B, registered


def test_current_phase_is_null_unless_the_batch_is_processing() -> None:
    assert rules.derive_current_phase(fold_samples(registered())) is None
    done = fold_samples(registered(), s.pipeline_completed(B, final_status="completed_with_failures"))
    assert rules.derive_current_phase(done) is None


def test_current_phase_is_spellcheck_while_some_essay_has_not_finished_spellcheck() -> None:
    batch = fold_samples(registered(), s.phase_outcome(B, ["e1", "e2"], event_timestamp=at(5)))
    assert rules.derive_current_phase(batch) is PhaseName.SPELLCHECK


def test_current_phase_moves_to_cj_assessment_once_every_essay_finished_spellcheck() -> None:
    batch = fold_samples(registered(), s.phase_outcome(B, ["e1", "e2"], ["e3"], event_timestamp=at(5)))
    assert rules.derive_current_phase(batch) is PhaseName.CJ_ASSESSMENT
    batch = fold_samples(
        registered(),
        s.phase_outcome(B, ["e1", "e2"], ["e3"], event_timestamp=at(5)),
        s.assessment_result(B, [s.essay_result(e) for e in ESSAYS], event_timestamp=at(9)),
    )
    assert rules.derive_status(batch) is BatchStatus.PROCESSING_PIPELINES
    assert rules.derive_current_phase(batch) is None


def test_an_in_progress_spellcheck_status_keeps_the_essay_processing() -> None:
    batch = fold_samples(
        registered(),
        s.phase_outcome(B, ESSAYS, event_timestamp=at(5)),
        s.spellcheck_result(B, "e1", status="spellchecking_in_progress", event_timestamp=at(6)),
    )
    assert batch.essays["e1"].spellcheck_progress.stage is ProcessingStage.PROCESSING  # type: ignore[union-attr]
    assert rules.derive_current_phase(batch) is PhaseName.SPELLCHECK


@pytest.mark.parametrize("status", list(BatchStatus))
def test_every_batch_status_maps_to_the_client_status_of_the_brief(status: BatchStatus) -> None:
    assert rules.derive_client_status(status) == BatchClientStatus(CLIENT_STATUS[status.value])
