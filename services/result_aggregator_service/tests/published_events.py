"""The events the service must publish for a batch's wire events, written from the brief's tables (§6)
and its emission rules, never from the service's own rules: the oracle of the outbox test and of the
Kafka end-to-end test.

`expected_events(events)` takes one batch's wire events (any order; duplicates are ignored) that end in a
published state and returns {event_id: ExpectedEvent}; `assert_matches` compares a record's value with
one, field by field (timestamps as instants).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common_core import topics as wire_topics
from result_aggregator_service.domain.emissions import EVENT_ID_NAMESPACE
from result_aggregator_service.tests import brief_tables as brief

JsonDict = dict[str, Any]
_PHASES = ("spellcheck", "ai_feedback", "cj_assessment", "nlp", "student_matching")  # PhaseName, in order


@dataclass(frozen=True)
class ExpectedEvent:
    topic: str
    key: str
    envelope: JsonDict


def event_id(batch_id: str, announcement: str, job_id: str | None = None) -> str:
    """Brief §6 rule 4: stable for what it announces. UUIDv5 of (batch id, announcement, CJ job id)."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{batch_id}\x1f{announcement}\x1f{job_id or ''}"))


def expected_events(events: Iterable[JsonDict]) -> dict[str, ExpectedEvent]:
    by_id = {event["event_id"]: event for event in events}
    of = _by_topic(by_id.values())
    registration = _latest(of[wire_topics.BATCH_ESSAYS_REGISTERED_TOPIC])
    batch_id, user_id = registration["data"]["entity_id"], registration["data"]["user_id"]
    expected: dict[str, ExpectedEvent] = {}
    for assessment in of[wire_topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC]:
        completing = _latest([registration, assessment])
        job_id = assessment["data"]["cj_assessment_job_id"]
        rankings = sorted(
            (
                {
                    "essay_id": r["essay_id"],
                    "rank": r["rank"],
                    "score": r["bt_score"],
                    "letter_grade": r["letter_grade"],
                    "confidence_score": r["confidence_score"],
                    "confidence_label": r["confidence_label"],
                }
                for r in assessment["data"]["essay_results"]
                if not r.get("is_anchor", False)
            ),
            key=lambda r: (r["rank"], r["essay_id"]),
        )
        data = {
            **_head(batch_id, brief.ASSESSMENT_COMPLETED_EVENT_NAME, "assessment_completed", completing),
            "status": "completed_successfully",
            "batch_id": batch_id,
            "user_id": user_id,
            "assessment_job_id": job_id,
            "rankings_summary": rankings,
        }
        payload = {
            "batch_id": batch_id,
            "assessment_job_id": job_id,
            "rankings_available": bool(rankings),
            "rankings_count": len(rankings),
        }
        _add(expected, brief.ASSESSMENT_COMPLETED_TOPIC, "assessment_completed", job_id, registration, completing, data,
             "batch_assessment_completed", payload)  # fmt: skip
    ready = _results_ready(of, registration)
    if ready is not None:
        data, payload, completing = ready
        _add(expected, brief.RESULTS_READY_TOPIC, "results_ready", None, registration, completing, data,
             "batch_results_ready", payload)  # fmt: skip
    return expected


def assert_matches(value: bytes | JsonDict, expected: ExpectedEvent) -> None:
    """Field by field; the notification's free-text message is checked for presence only."""
    actual = json.loads(value) if isinstance(value, bytes) else value
    if actual["data"].get("payload"):
        assert isinstance(actual["data"]["payload"].pop("message"), str)
    assert _instants(actual) == _instants(expected.envelope)


# --- results ready -------------------------------------------------------------------------------


def _results_ready(of: dict[str, list[JsonDict]], registration: JsonDict) -> tuple[JsonDict, JsonDict, JsonDict] | None:
    batch_id = registration["data"]["entity_id"]
    outcomes = {
        o["data"]["phase_name"]: o for o in _latest_each(of[wire_topics.BATCH_PHASE_OUTCOME_TOPIC], "phase_name")
    }
    completions = of[wire_topics.BATCH_PIPELINE_COMPLETED_TOPIC]
    completion = _latest(completions) if completions else None
    terminal_facts = [c for c in completions if c["data"]["final_status"] in brief.TERMINAL_STATUSES]
    terminal_facts += [o for o in outcomes.values() if o["data"]["phase_status"] == "failed_critically"]
    if not terminal_facts:
        return None
    terminal = _latest(terminal_facts)
    status = terminal["data"].get("final_status") or "failed_critically"
    made_due = [registration, terminal]
    if status not in brief.EARLY_STATUSES:
        made_due += [*outcomes.values(), *completions]
        for phase, outcome in outcomes.items():
            for processed in outcome["data"]["processed_essays"]:
                made_due.append(_result_of(of, phase, processed["essay_id"]))
    completing = _latest(made_due)
    phase_results = {
        phase: {
            "phase_name": phase,
            "status": "completed_with_failures" if outcomes[phase]["data"]["failed_essay_ids"] else "completed",
            "completed_count": len(outcomes[phase]["data"]["processed_essays"]),
            "failed_count": len(outcomes[phase]["data"]["failed_essay_ids"]),
            "processing_time_seconds": None,
        }
        for phase in sorted(outcomes, key=_PHASES.index)
    }
    essay_ids = list(dict.fromkeys(registration["data"]["essay_ids"]))
    total = max(registration["data"]["expected_essay_count"], len(essay_ids))
    completed = sum(
        1 for e in essay_ids if "completed" in (_stage(of, outcomes, p, e) for p in ("spellcheck", "cj_assessment"))
    )
    duration = completion["data"]["processing_duration_seconds"] if completion else _duration(of, terminal)
    data = {
        **_head(batch_id, brief.RESULTS_READY_EVENT_NAME, "results_ready", completing),
        "status": status,
        "batch_id": batch_id,
        "user_id": registration["data"]["user_id"],
        "total_essays": total,
        "completed_essays": completed,
        "phase_results": phase_results,
        "overall_status": status,
        "processing_duration_seconds": duration,
    }
    payload = {
        "batch_id": batch_id,
        "total_essays": total,
        "completed_essays": completed,
        "overall_status": status,
        "processing_duration_seconds": duration,
        "phase_results": {
            phase: {k: v for k, v in s.items() if k != "phase_name"} for phase, s in phase_results.items()
        },
    }
    return data, payload, completing


def _duration(of: dict[str, list[JsonDict]], terminal: JsonDict) -> float:
    """Without the pipeline's figure: processing completed (the terminal fact) - started (the first
    phase outcome or essay result)."""
    processing = [wire_topics.BATCH_PHASE_OUTCOME_TOPIC, wire_topics.SPELLCHECK_RESULTS_TOPIC]
    started = min(_order(e)[0] for t in [*processing, wire_topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC] for e in of[t])
    return max(0.0, (_order(terminal)[0] - started).total_seconds())


def _result_of(of: dict[str, list[JsonDict]], phase: str, essay_id: str) -> JsonDict:
    """The result event of an essay the outcome lists as processed (the lifecycle must hold it)."""
    if phase == "spellcheck":
        return next(e for e in of[wire_topics.SPELLCHECK_RESULTS_TOPIC] if e["data"]["entity_id"] == essay_id)
    return next(
        a
        for a in of[wire_topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC]
        if any(r["essay_id"] == essay_id for r in a["data"]["essay_results"])
    )


def _stage(of: dict[str, list[JsonDict]], outcomes: dict[str, JsonDict], phase: str, essay_id: str) -> str | None:
    """An essay's stage in a phase: that of the latest fact about it (outcome, or the essay's result)."""
    facts: list[tuple[JsonDict, str]] = []
    if (outcome := outcomes.get(phase)) is not None:
        if essay_id in [p["essay_id"] for p in outcome["data"]["processed_essays"]]:
            facts.append((outcome, "completed"))
        if essay_id in outcome["data"]["failed_essay_ids"]:
            facts.append((outcome, "failed"))
    if phase == "spellcheck":
        for result in of[wire_topics.SPELLCHECK_RESULTS_TOPIC]:
            status = result["data"]["status"]
            if result["data"]["entity_id"] == essay_id:
                stage = "completed" if status.endswith("success") else "failed" if "failed" in status else "processing"
                facts.append((result, stage))
    else:
        for result in of[wire_topics.ASSESSMENT_RESULT_PUBLISHED_TOPIC]:
            if any(r["essay_id"] == essay_id and not r.get("is_anchor") for r in result["data"]["essay_results"]):
                facts.append((result, "completed"))
    return max(facts, key=lambda fact: _order(fact[0]))[1] if facts else None


# --- envelopes -----------------------------------------------------------------------------------


def _head(batch_id: str, event_name: str, event: str, completing: JsonDict) -> JsonDict:
    at = completing["event_timestamp"]
    return {
        "event_name": event_name,
        "entity_id": batch_id,
        "entity_type": "batch",
        "parent_id": None,
        "timestamp": at,
        "system_metadata": {
            "entity_id": batch_id,
            "entity_type": "batch",
            "parent_id": None,
            "timestamp": at,
            "processing_stage": None,
            "started_at": None,
            "completed_at": None,
            "event": event,
            "error_info": {},
        },
    }


def _add(
    expected: dict[str, ExpectedEvent],
    topic: str,
    announcement: str,
    job_id: str | None,
    registration: JsonDict,
    completing: JsonDict,
    data: JsonDict,
    notification_type: str,
    payload: JsonDict,
) -> None:
    batch_id, teacher = data["batch_id"], registration["data"]["user_id"]
    main = _envelope(event_id(batch_id, announcement, job_id), topic, completing, data)
    notification = {
        "teacher_id": teacher,
        "notification_type": notification_type,
        "category": brief.NOTIFICATION_CATEGORY,
        "priority": brief.NOTIFICATION_PRIORITY[notification_type],
        "payload": payload,
        "action_required": False,
        "deadline_timestamp": None,
        "correlation_id": completing["correlation_id"],
        "batch_id": batch_id,
        "class_id": registration["data"].get("class_id"),
        "timestamp": completing["event_timestamp"],
    }
    notice_id = event_id(batch_id, f"notification:{announcement}", job_id)
    expected[main["event_id"]] = ExpectedEvent(topic, batch_id, main)
    expected[notice_id] = ExpectedEvent(
        brief.TEACHER_NOTIFICATION_TOPIC,
        teacher,
        _envelope(notice_id, brief.TEACHER_NOTIFICATION_TOPIC, completing, notification),
    )


def _envelope(event_id: str, topic: str, completing: JsonDict, data: JsonDict) -> JsonDict:
    return {
        "event_id": event_id,
        "event_type": topic,
        "event_timestamp": completing["event_timestamp"],
        "source_service": brief.SOURCE_SERVICE,
        "schema_version": 1,
        "correlation_id": completing["correlation_id"],
        "data_schema_uri": None,
        "data": data,
        "metadata": None,
    }


# --- helpers -------------------------------------------------------------------------------------


def _by_topic(events: Iterable[JsonDict]) -> dict[str, list[JsonDict]]:
    of: dict[str, list[JsonDict]] = {topic: [] for topic in wire_topics.CONSUMED_TOPICS}
    for event in events:
        of[event["event_type"]].append(event)
    return of


def _order(event: JsonDict) -> tuple[datetime, str]:
    """Brief §2 rule 1: conflicting facts resolve by latest event_timestamp, then event_id."""
    return datetime.fromisoformat(event["event_timestamp"]), event["event_id"]


def _latest(events: Iterable[JsonDict]) -> JsonDict:
    return max(events, key=_order)


def _latest_each(events: Iterable[JsonDict], field: str) -> list[JsonDict]:
    latest: dict[str, JsonDict] = {}
    for event in sorted(events, key=_order):
        latest[event["data"][field]] = event
    return list(latest.values())


def _instants(node: Any, key: str = "") -> Any:
    """Timestamps as instants (`...:00Z` and `...:00.000000Z` are the same), recursively."""
    if isinstance(node, dict):
        return {k: _instants(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_instants(v) for v in node]
    if isinstance(node, str) and key.endswith("timestamp"):
        return datetime.fromisoformat(node)
    return node
