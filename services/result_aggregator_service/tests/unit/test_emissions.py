"""The emission rules (brief §6) on hand-made batches, checked against the brief's tables."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from common_core import topics
from result_aggregator_service import wire_events as wire
from result_aggregator_service.domain.emissions import PublishedTopics, derive_newly_due_messages
from result_aggregator_service.tests import brief_tables as brief
from result_aggregator_service.tests.published_events import assert_matches, expected_events
from result_aggregator_service.tests.unit.folding import at, fold_samples

TOPICS = PublishedTopics(
    topics.BATCH_RESULTS_READY_TOPIC,
    topics.BATCH_ASSESSMENT_COMPLETED_TOPIC,
    topics.TEACHER_NOTIFICATION_REQUESTED_TOPIC,
)
B, E = "batch-1", ["e1", "e2", "e3"]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def timed(*events: dict[str, Any]) -> list[dict[str, Any]]:
    """The events 1 s apart, in the order given."""
    for second, event in enumerate(events):
        event["event_timestamp"] = wire.iso(at(second))
    return list(events)


def published(*events: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the folded events make due, by topic (the notifications by their type)."""
    messages = derive_newly_due_messages(None, fold_samples(*events, batch_id=B), TOPICS)
    out: dict[str, dict[str, Any]] = {}
    for message in messages:
        envelope = json.loads(message.value)
        name = envelope["data"].get("notification_type") or message.topic
        assert name not in out, f"{name} published twice"
        out[name] = envelope
    return out


def completed_lifecycle(failed: list[str] | None = None) -> list[dict[str, Any]]:
    failed = failed or []
    passed = [e for e in E if e not in failed]
    ranks = [wire.essay_result(e, rank) for rank, e in enumerate(reversed(passed), start=2)]
    return timed(
        wire.batch_registered(B, E, user_id="teacher-1"),
        *[
            wire.spellcheck_result(B, e, status="spellcheck_failed" if e in failed else "spellchecked_success")
            for e in E
        ],
        wire.phase_outcome(
            B, passed, failed, phase_status="completed_with_failures" if failed else "completed_successfully"
        ),
        wire.assessment_result(B, [*ranks, wire.essay_result("anchor-1", 1, is_anchor=True)]),
        wire.phase_outcome(B, passed, phase_name="cj_assessment"),
        wire.pipeline_completed(
            B,
            final_status="completed_with_failures" if failed else "completed_successfully",
            successful=len(passed),
            failed=len(failed),
            processing_duration_seconds=17.5,
        ),
    )


def test_a_completed_batch_publishes_each_event_once_as_the_brief_tables_say() -> None:
    events = completed_lifecycle()
    out = published(*events)
    assert set(out) == {
        brief.RESULTS_READY_TOPIC,
        brief.ASSESSMENT_COMPLETED_TOPIC,
        "batch_results_ready",
        "batch_assessment_completed",
    }
    expected = expected_events(events)
    for envelope in out.values():
        assert_matches(envelope, expected[envelope["event_id"]])
    ready = out[brief.RESULTS_READY_TOPIC]
    assert instant(ready["event_timestamp"]) == instant(events[-1]["event_timestamp"])  # the completion completed it
    assert ready["correlation_id"] == events[-1]["correlation_id"]
    assert ready["data"]["processing_duration_seconds"] == 17.5  # the pipeline's own figure
    notice = out["batch_results_ready"]
    assert (notice["data"]["priority"], notice["data"]["teacher_id"]) == ("high", "teacher-1")
    assert notice["data"]["correlation_id"] == ready["correlation_id"]


def test_partial_failures_make_the_phase_and_the_batch_completed_with_failures() -> None:
    data = published(*completed_lifecycle(failed=["e2"]))[brief.RESULTS_READY_TOPIC]["data"]
    assert data["overall_status"] == data["status"] == "completed_with_failures"
    assert data["phase_results"]["spellcheck"] == {
        "phase_name": "spellcheck",
        "status": "completed_with_failures",
        "completed_count": 2,
        "failed_count": 1,
        "processing_time_seconds": None,
    }
    assert data["phase_results"]["cj_assessment"]["status"] == "completed"
    assert (data["total_essays"], data["completed_essays"]) == (3, 2)


def test_rankings_leave_out_anchors_and_follow_the_rank() -> None:
    data = published(*completed_lifecycle())[brief.ASSESSMENT_COMPLETED_TOPIC]["data"]
    assert [(r["essay_id"], r["rank"]) for r in data["rankings_summary"]] == [("e3", 2), ("e2", 3), ("e1", 4)]
    assert data["status"] == "completed_successfully"
    notice = published(*completed_lifecycle())["batch_assessment_completed"]["data"]
    assert (notice["priority"], notice["payload"]["rankings_count"], notice["payload"]["rankings_available"]) == (
        "standard",
        3,
        True,
    )


def test_results_are_not_ready_while_an_essay_the_outcome_processed_lacks_its_result() -> None:
    events = completed_lifecycle()
    without = [
        e for e in events if not (e["event_type"] == topics.SPELLCHECK_RESULTS_TOPIC and e["data"]["entity_id"] == "e2")
    ]
    assert brief.RESULTS_READY_TOPIC not in published(*without)
    assert brief.RESULTS_READY_TOPIC in published(*events)


def test_results_are_not_ready_while_a_completed_phase_has_no_outcome() -> None:
    events = [e for e in completed_lifecycle() if e["data"].get("phase_name") != "cj_assessment"]
    assert brief.RESULTS_READY_TOPIC not in published(*events)


def test_a_critically_failed_batch_publishes_as_soon_as_it_is_registered_and_terminal() -> None:
    events = timed(
        wire.spellcheck_result(B, "e1"),
        wire.phase_outcome(B, ["e1"], ["e2", "e3"], phase_status="failed_critically"),
        wire.batch_registered(B, E, user_id="teacher-1"),
    )
    out = published(*events)
    data = out[brief.RESULTS_READY_TOPIC]["data"]
    assert data["overall_status"] == "failed_critically"
    assert (data["total_essays"], data["completed_essays"]) == (3, 1)
    # no pipeline completion: from the first processing fact (the spellcheck result) to the terminal one
    assert data["processing_duration_seconds"] == 1.0
    assert out[brief.RESULTS_READY_TOPIC]["correlation_id"] == events[-1]["correlation_id"]  # the registration
    assert_matches(out["batch_results_ready"], expected_events(events)[out["batch_results_ready"]["event_id"]])


def test_a_cancelled_batch_publishes_without_waiting_for_its_phases() -> None:
    events = timed(
        wire.batch_registered(B, E, user_id="teacher-1"),
        wire.pipeline_completed(B, final_status="cancelled", successful=0, completed_phases=["spellcheck"]),
    )
    data = published(*events)[brief.RESULTS_READY_TOPIC]["data"]
    assert (data["overall_status"], data["phase_results"], data["completed_essays"]) == ("cancelled", {}, 0)


def test_nothing_is_published_for_a_batch_not_registered() -> None:
    events = completed_lifecycle()
    assert published(*events[1:]) == {}


def test_each_cj_job_is_announced_once_and_a_resent_one_keeps_its_id() -> None:
    events = completed_lifecycle()
    second_job = wire.assessment_result(B, [wire.essay_result("e1", 1)])

    def ids(*delivered: dict[str, Any]) -> list[str]:
        messages = derive_newly_due_messages(None, fold_samples(*delivered, batch_id=B), TOPICS)
        return sorted(str(m.event_id) for m in messages if m.topic == topics.BATCH_ASSESSMENT_COMPLETED_TOPIC)

    first = ids(*events)
    both = ids(*events, second_job, events[5])  # a second job, and the first one's result re-sent
    assert len(first) == 1 and len(both) == 2 and set(first) < set(both)


def test_a_result_before_registration_is_announced_with_the_registrations_stamp() -> None:
    assessment = wire.assessment_result(B, [wire.essay_result("e1", 1)], event_timestamp=at(0))
    registration = wire.batch_registered(B, ["e1"], user_id="teacher-1", event_timestamp=at(5))
    assert published(assessment) == {}
    envelope = published(assessment, registration)[brief.ASSESSMENT_COMPLETED_TOPIC]
    assert (instant(envelope["event_timestamp"]), envelope["correlation_id"]) == (at(5), registration["correlation_id"])


def test_what_was_due_before_the_change_is_not_written_again() -> None:
    events = completed_lifecycle()
    before = fold_samples(*events, batch_id=B)
    after = fold_samples(*events, wire.slot_assigned(B, "e1"), batch_id=B)
    assert derive_newly_due_messages(before, after, TOPICS) == []


def test_records_are_keyed_by_batch_and_notifications_by_teacher_with_the_briefs_headers() -> None:
    messages = derive_newly_due_messages(None, fold_samples(*completed_lifecycle(), batch_id=B), TOPICS)
    for message in messages:
        envelope = json.loads(message.value)
        notification = message.topic == topics.TEACHER_NOTIFICATION_REQUESTED_TOPIC
        assert message.key == (b"teacher-1" if notification else B.encode())
        assert dict(message.headers) == {
            "event_id": envelope["event_id"],
            "event_type": message.topic,
            "source_service": brief.SOURCE_SERVICE,
            "schema_version": "1",
            "occurred_at": envelope["event_timestamp"],
            "content_type": "application/json",
        }
        assert str(message.event_id) == envelope["event_id"]
