"""GET /internal/v1/batches/{batch_id}/status: the brief's BatchStatusResponse, field by field, in every state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dishka import AsyncContainer

from result_aggregator_service.tests.brief_tables import CLIENT_STATUS
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.integration.api_support import AUTH, BATCH_STATUS, Client, ingest
from result_aggregator_service.tests.scenarios import lifecycle

pytest_plugins = ["result_aggregator_service.tests.integration.api_fixtures"]
pytestmark = pytest.mark.infra

BATCH_FIELDS = {
    "batch_id", "user_id", "assignment_id", "overall_status", "essay_count", "completed_essay_count",
    "failed_essay_count", "requested_pipeline", "current_phase", "essays", "created_at", "last_updated",
    "processing_started_at", "processing_completed_at", "student_prompt_ref",
}  # fmt: skip
ESSAY_FIELDS = {
    "essay_id", "filename", "file_upload_id", "spellcheck_status", "spellcheck_correction_count",
    "spellcheck_corrected_text_storage_id", "spellcheck_error_detail", "cj_assessment_status", "cj_rank",
    "cj_score", "cj_normalized_score", "cj_letter_grade", "cj_confidence_score", "cj_confidence_label",
    "cj_assessment_error_detail", "last_updated",
}  # fmt: skip


async def status_of(client: Client, batch_id: str) -> dict[str, Any]:
    response = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)
    assert response.status_code == 200, await response.get_data()
    body: dict[str, Any] = await response.get_json()
    return body


def utc(value: str) -> datetime:
    assert value.endswith("Z"), f"{value} is not ISO-8601 UTC"
    return datetime.fromisoformat(value)


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["event_timestamp"])


async def test_a_completed_lifecycle_answers_every_field_of_the_brief(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id, user_id = samples.new_id("batch-"), samples.new_id("user-")
    first, second = sorted([samples.new_id("essay-a-"), samples.new_id("essay-b-")])
    events = lifecycle(batch_id, [first, second], user_id=user_id)
    registered, slot_1, slot_2, spell_1, spell_2, _, assessed, cj_outcome, completed = events
    await ingest(api_services, events)

    body = await status_of(client, batch_id)

    assert set(body) == BATCH_FIELDS
    essays = body.pop("essays")
    assert {k: v for k, v in body.items() if "_at" not in k and k != "last_updated"} == {
        "batch_id": batch_id,
        "user_id": user_id,
        "assignment_id": "assignment-1",
        "overall_status": "completed_with_failures",
        "essay_count": 2,
        "completed_essay_count": 1,
        "failed_essay_count": 1,
        "requested_pipeline": None,
        "current_phase": None,
        "student_prompt_ref": registered["data"]["student_prompt_ref"],
    }
    assert utc(body["created_at"]) == at(registered)
    assert utc(body["last_updated"]) == at(completed)
    assert utc(body["processing_started_at"]) == at(spell_1)
    assert utc(body["processing_completed_at"]) == at(completed)

    assert [essay["essay_id"] for essay in essays] == [first, second]
    assert all(set(essay) == ESSAY_FIELDS for essay in essays)
    cj_failure = {"error_type": "phase_failed", "phase_name": "cj_assessment", "phase_status": "completed_successfully"}
    for essay, slot, spell, rank, cj_status, cj_error in [
        (essays[0], slot_1, spell_1, 1, "failed", cj_failure),
        (essays[1], slot_2, spell_2, 2, "completed", None),
    ]:
        assert utc(essay.pop("last_updated")) == at(cj_outcome)
        assert essay == {
            "essay_id": slot["data"]["essay_id"],
            "filename": slot["data"]["original_file_name"],
            "file_upload_id": slot["data"]["file_upload_id"],
            "spellcheck_status": "completed",
            "spellcheck_correction_count": 3,
            "spellcheck_corrected_text_storage_id": spell["data"]["corrected_text_storage_id"],
            "spellcheck_error_detail": None,
            "cj_assessment_status": cj_status,
            "cj_rank": rank,
            "cj_score": 1.25,
            "cj_normalized_score": 0.75,
            "cj_letter_grade": "B+",
            "cj_confidence_score": 0.8,
            "cj_confidence_label": "HIGH",
            "cj_assessment_error_detail": cj_error,
        }
    assert "anchor-essay" not in {essay["essay_id"] for essay in essays} and assessed


async def test_a_just_registered_batch_is_pending_content_with_bare_essays(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id, essay_ids = samples.new_id("batch-"), sorted(samples.new_id("essay-") for _ in range(3))
    registration = samples.batch_registered(batch_id, essay_ids, user_id="owner-1")
    await ingest(api_services, [registration])

    body = await status_of(client, batch_id)

    assert body["overall_status"] == "pending_content"
    assert (body["essay_count"], body["completed_essay_count"], body["failed_essay_count"]) == (3, 0, 0)
    assert body["current_phase"] is None and body["processing_started_at"] is None
    assert body["processing_completed_at"] is None and body["assignment_id"] is None
    assert [e["essay_id"] for e in body["essays"]] == essay_ids
    assert all(
        value is None for e in body["essays"] for key, value in e.items() if key not in ("essay_id", "last_updated")
    )


async def test_a_processing_batch_shows_the_first_unfinished_phase(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id, done, waiting = samples.new_id("batch-"), samples.new_id("essay-"), samples.new_id("essay-")
    start = datetime.now(UTC) - timedelta(minutes=1)
    await ingest(api_services, [samples.batch_registered(batch_id, [done, waiting], event_timestamp=start)])
    half = samples.phase_outcome(batch_id, [done], event_timestamp=start + timedelta(seconds=1))
    await ingest(api_services, [half])

    body = await status_of(client, batch_id)
    assert (body["overall_status"], body["current_phase"]) == ("processing", "spellcheck")
    assert utc(body["processing_started_at"]) == at(half)

    rest = samples.phase_outcome(batch_id, [waiting], event_timestamp=start + timedelta(seconds=2))
    await ingest(api_services, [rest])
    assert (await status_of(client, batch_id))["current_phase"] == "cj_assessment"


@pytest.mark.parametrize("internal_status", sorted(CLIENT_STATUS))
async def test_every_internal_status_maps_to_the_briefs_client_status(
    internal_status: str, client: Client, api_services: AsyncContainer
) -> None:
    batch_id = samples.new_id("batch-")
    start = datetime.now(UTC) - timedelta(minutes=1)
    await ingest(api_services, [samples.batch_registered(batch_id, ["e1"], event_timestamp=start)])
    final = samples.pipeline_completed(
        batch_id, final_status=internal_status, event_timestamp=start + timedelta(seconds=1)
    )
    await ingest(api_services, [final])

    assert (await status_of(client, batch_id))["overall_status"] == CLIENT_STATUS[internal_status]


async def test_a_batch_known_only_from_early_results_is_not_found(client: Client, api_services: AsyncContainer) -> None:
    batch_id = samples.new_id("batch-")
    await ingest(api_services, [samples.spellcheck_result(batch_id, "early-essay")])

    response = await client.get(BATCH_STATUS.format(batch_id), headers=AUTH)

    assert response.status_code == 404
    assert (await response.get_json())["error"] == "not_found"
    await ingest(api_services, [samples.batch_registered(batch_id, ["early-essay"])])
    essays = (await status_of(client, batch_id))["essays"]
    assert essays[0]["spellcheck_correction_count"] == 3


async def test_an_unknown_batch_is_not_found_in_the_error_shape(client: Client) -> None:
    response = await client.get(BATCH_STATUS.format(samples.new_id("nobody-")), headers=AUTH)

    assert response.status_code == 404
    body = await response.get_json()
    assert set(body) == {"error", "message", "correlation_id"}
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]


async def test_a_corrected_registration_shows_only_its_essays_and_keeps_the_batch_processing(
    client: Client, api_services: AsyncContainer
) -> None:
    batch_id, user_id = samples.new_id("batch-"), samples.new_id("user-")
    start = datetime.now(UTC) - timedelta(minutes=1)
    await ingest(
        api_services,
        [
            samples.batch_registered(batch_id, ["e1", "e2", "e3"], event_timestamp=start),
            samples.phase_outcome(batch_id, ["e1"], ["e2"], event_timestamp=start + timedelta(seconds=1)),
            samples.spellcheck_result(batch_id, "stray", event_timestamp=start + timedelta(seconds=2)),
        ],
    )
    corrected = samples.batch_registered(
        batch_id, ["e1", "e3"], user_id=user_id, event_timestamp=start + timedelta(seconds=3)
    )
    await ingest(api_services, [corrected])

    body = await status_of(client, batch_id)

    assert [essay["essay_id"] for essay in body["essays"]] == ["e1", "e3"]
    assert (body["essay_count"], body["completed_essay_count"], body["failed_essay_count"]) == (2, 1, 0)
    assert (body["user_id"], body["overall_status"], body["current_phase"]) == (user_id, "processing", "spellcheck")
    page = await client.get(f"/internal/v1/batches/user/{user_id}", headers=AUTH)
    assert [essay["essay_id"] for essay in (await page.get_json())["batches"][0]["essays"]] == ["e1", "e3"]
