"""The stored facts JSON is a contract with every row already written: old shapes keep decoding, and a
shape the code does not know fails loudly instead of silently dropping a stored value."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from common_core.enums import BatchStatus, PhaseName, ProcessingStage
from result_aggregator_service.adapters.facts_codec import (
    FACTS_VERSION,
    StoredFactsError,
    decode_batch,
    decode_essay,
    encode_batch,
    encode_essay,
)
from result_aggregator_service.domain import rules
from result_aggregator_service.domain.model import BatchResult, EssayResult
from result_aggregator_service.lifecycles import batch_lifecycle
from result_aggregator_service.tests.unit.folding import decoded, fold

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
BATCH_ID = "d13c513a-42f8-4da1-97b1-165f0971b7c4"
ESSAY_ID = "2abc5619-25ab-489b-967e-4d928a831817"


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


@pytest.mark.parametrize("name", ["batch_facts_unversioned.json", "batch_facts_v1.json", "batch_facts_v2.json"])
def test_golden_batch_facts_decode_with_every_fact(name: str) -> None:
    batch = decode_batch(golden(name), essays={})
    assert batch.batch_id == BATCH_ID
    assert batch.registration is not None and batch.registration.user_id == "golden-teacher"
    assert len(batch.registration.essay_ids) == 3
    assert rules.derive_status(batch) is BatchStatus.COMPLETED_WITH_FAILURES
    assert batch.completion is not None and batch.completion.failed_essay_count == 1
    assert {phase.value for phase in batch.phases} == {"spellcheck", "cj_assessment"}


@pytest.mark.parametrize("name", ["essay_facts_unversioned.json", "essay_facts_v1.json", "essay_facts_v2.json"])
def test_golden_essay_facts_decode_with_every_fact(name: str) -> None:
    essay = decode_essay(golden(name))
    assert essay.essay_id == ESSAY_ID
    assert essay.slot is not None and essay.slot.original_file_name == "dagny_ENG7.docx"
    assert essay.cj is not None and (essay.cj.rank, essay.cj.letter_grade) == (3, "F")
    assert essay.cj_progress is not None and essay.cj_progress.stage is ProcessingStage.COMPLETED
    assert essay.spellcheck_progress is not None


def test_an_unversioned_row_is_rewritten_as_the_current_version_unchanged() -> None:
    batch = decode_batch(golden("batch_facts_unversioned.json"), essays={})
    assert json.loads(encode_batch(batch)) == _as_current(json.loads(golden("batch_facts_v1.json")))
    essay = decode_essay(golden("essay_facts_unversioned.json"))
    assert json.loads(encode_essay(essay)) == _as_current(json.loads(golden("essay_facts_v1.json")))


def _as_current(document: dict[str, Any]) -> dict[str, Any]:
    """A version-1 document as version 2 writes it: the facts version 2 added, at their defaults."""
    pending: list[Any] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "event_id" in node and "at" in node:
                node["correlation_id"] = None
            pending.extend(node.values())
    for summary in document.get("phases", {}).values():
        summary["processed_essay_ids"] = []
    if "batch_id" in document:
        document["assessments"] = {}
    return {**document, "facts_version": FACTS_VERSION}


def test_version_2_keeps_what_the_published_events_are_derived_from() -> None:
    batch = decode_batch(golden("batch_facts_v2.json"), essays={})
    job = batch.assessments["cj-job-golden"]
    assert [(r.essay_id, r.rank) for r in job.rankings] == [(ESSAY_ID, 1), ("162794bf-eca9-4ad1-849e-78e4f15ce760", 3)]
    assert batch.phases[PhaseName.SPELLCHECK].processed_essay_ids[1] == ESSAY_ID
    assert batch.completion is not None
    assert batch.completion.stamp.correlation_id == "00000000-0000-4000-9000-000000000010"
    assert json.loads(encode_batch(batch)) == json.loads(golden("batch_facts_v2.json"))


def test_a_renamed_field_fails_loudly_instead_of_dropping_the_stored_value() -> None:
    stored = json.loads(golden("essay_facts_v2.json"))
    stored["slot"]["file_name"] = stored["slot"].pop("original_file_name")
    with pytest.raises(ValidationError):
        decode_essay(json.dumps(stored))


def test_a_document_of_a_newer_version_is_refused() -> None:
    stored = json.loads(golden("batch_facts_v2.json"))
    stored["facts_version"] = FACTS_VERSION + 1
    with pytest.raises(StoredFactsError):
        decode_batch(json.dumps(stored), essays={})


def test_the_encoding_is_byte_for_byte_what_pydantic_writes() -> None:
    """orjson encodes; pydantic's dump_json over the same dataclasses is the reference shape."""
    reference = (TypeAdapter(BatchResult), TypeAdapter(EssayResult))
    rng = random.Random(7)
    for _ in range(50):
        life = batch_lifecycle(rng, "codec-user", essay_count=3)
        batch = fold([decoded(e) for e in life.events[: rng.randint(1, len(life.events))]], life.batch_id)
        version = b'{"facts_version":%d,' % FACTS_VERSION
        assert encode_batch(batch) == version + reference[0].dump_json(batch, exclude={"essays"})[1:]
        for essay in batch.essays.values():
            assert encode_essay(essay) == version + reference[1].dump_json(essay)[1:]
