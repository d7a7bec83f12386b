"""One fixed whole-batch event sequence, for tests that assert exact field values (its first essay fails
the CJ phase). Realistic, varied lifecycles with their expected API state come from
`result_aggregator_service.lifecycles`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from result_aggregator_service.tests.contract import sample_envelopes as samples


def lifecycle(batch_id: str, essay_ids: list[str], user_id: str = "user-1") -> list[dict[str, Any]]:
    """Every topic's event for one batch, in the order the platform produces them, 1 s apart."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    first, *rest = essay_ids
    events = [
        samples.batch_registered(batch_id, essay_ids, user_id=user_id),
        *[samples.slot_assigned(batch_id, essay_id, file_name=f"{essay_id}.docx") for essay_id in essay_ids],
        *[samples.spellcheck_result(batch_id, essay_id) for essay_id in essay_ids],
        samples.phase_outcome(batch_id, essay_ids, phase_name="spellcheck"),
        samples.assessment_result(
            batch_id,
            [samples.essay_result(essay_id, rank) for rank, essay_id in enumerate(essay_ids, start=1)]
            + [samples.essay_result("anchor-essay", len(essay_ids) + 1, is_anchor=True)],
        ),
        samples.phase_outcome(batch_id, rest, [first], phase_name="cj_assessment"),
        samples.pipeline_completed(batch_id, final_status="completed_with_failures", successful=len(rest), failed=1),
    ]
    for second, event in enumerate(events):
        event["event_timestamp"] = samples.iso(start + timedelta(seconds=second))
    return events
