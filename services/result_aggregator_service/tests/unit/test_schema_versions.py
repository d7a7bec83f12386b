"""Versioned payloads: the registry's shape, upcasting, the stated version found cheaply but never wrongly,
and unknown versions parked as `unsupported_version` while the next record is applied."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common_core import events, topics
from common_core.registry import PAYLOAD_TYPE_BY_TOPIC
from result_aggregator_service.adapters.in_memory import InMemoryStore, InMemoryUnitOfWork
from result_aggregator_service.service_layer.decoding import decode_event
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import ParkReason
from result_aggregator_service.service_layer.schema_versions import SCHEMA_VERSIONS, UnsupportedSchemaVersion
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import RecordingChangeSink, SetSeenEventHints, record_of
from result_aggregator_service.tests.unit.folding import fold

SPELLCHECK = topics.SPELLCHECK_RESULTS_TOPIC


def raw(sample: dict[str, Any]) -> bytes:
    return samples.to_bytes(sample)


def test_every_topic_has_consecutive_versions_from_one_each_upcast_but_the_current() -> None:
    assert SCHEMA_VERSIONS.keys() == PAYLOAD_TYPE_BY_TOPIC.keys()
    for versions in SCHEMA_VERSIONS.values():
        assert sorted(versions) == list(range(1, len(versions) + 1))
        assert [versions[v].upcast is None for v in sorted(versions)] == [False] * (len(versions) - 1) + [True]
    assert sorted(SCHEMA_VERSIONS[SPELLCHECK]) == [1, 2]


def test_a_version_1_spellcheck_result_is_upcast_to_the_current_model() -> None:
    v1 = samples.spellcheck_result("b1", "e1", corrections=7)
    decoded = decode_event(SPELLCHECK, raw(v1))
    assert isinstance(decoded.data, events.SpellcheckResultV1Schema2) and decoded.schema_version == 2
    assert (decoded.data.correction_count, decoded.data.language) == (7, "und")
    v2 = decode_event(SPELLCHECK, raw(samples.spellcheck_as_schema_2(v1, language="und")))
    assert decoded == v2 and decoded.data == v2.data and type(decoded) is type(v2)
    assert decoded.model_dump_json() == v2.model_dump_json()
    assert decoded.data.model_fields_set == v2.data.model_fields_set


def test_a_current_version_envelope_is_returned_as_validated() -> None:
    registration = samples.batch_registered("b1", ["e1"])
    decoded = decode_event(topics.BATCH_ESSAYS_REGISTERED_TOPIC, raw(registration))
    assert type(decoded.data) is events.BatchEssaysRegistered and decoded.schema_version == 1


@settings(max_examples=100, deadline=None)
@given(
    corrections=st.integers(0, 2**31 - 1),
    status=st.sampled_from(["spellchecked_success", "spellcheck_failed"]),
    language=st.sampled_from(["en", "sv", "und"]),
    v2_first=st.booleans(),
)
def test_version_1_and_2_of_the_same_result_fold_to_the_same_state(
    corrections: int, status: str, language: str, v2_first: bool
) -> None:
    registration = samples.batch_registered("b1", ["e1"])
    v1 = samples.spellcheck_result("b1", "e1", corrections=corrections, status=status)
    v2 = samples.spellcheck_as_schema_2(v1, language=language)
    as_v1 = fold(
        [decode_event(topics.BATCH_ESSAYS_REGISTERED_TOPIC, raw(registration)), decode_event(SPELLCHECK, raw(v1))]
    )
    as_v2 = fold(
        [decode_event(topics.BATCH_ESSAYS_REGISTERED_TOPIC, raw(registration)), decode_event(SPELLCHECK, raw(v2))]
    )
    assert as_v1 == as_v2
    # the same event id: either version after the other changes nothing
    both = [decode_event(SPELLCHECK, raw(v2)), decode_event(SPELLCHECK, raw(v1))]
    assert (
        fold([decode_event(topics.BATCH_ESSAYS_REGISTERED_TOPIC, raw(registration)), *both[:: 1 if v2_first else -1]])
        == as_v1
    )


@settings(max_examples=200, deadline=None)
@given(
    version=st.sampled_from([1, 2, None]),  # None: the key left out (version 1)
    decoy=st.sampled_from([None, 1, 2, 99, "2"]),  # a "schema_version" inside the metadata, or none
    seed=st.integers(0, 2**32 - 1),
    spaces=st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t")]),
)
def test_the_stated_version_is_found_wherever_the_key_sits_and_whatever_a_nested_one_says(
    version: int | None, decoy: Any, seed: int, spaces: tuple[str, str]
) -> None:
    sample = samples.spellcheck_result("b1", "e1", corrections=5)
    if version == 2:
        sample = samples.spellcheck_as_schema_2(sample)
    if version is None:
        del sample["schema_version"]
    if decoy is not None:
        sample["metadata"] = {"schema_version": decoy, "traceparent": None}
    keys = list(sample)
    random.Random(seed).shuffle(keys)
    value = json.dumps({key: sample[key] for key in keys}, separators=spaces).encode()
    decoded = decode_event(SPELLCHECK, value)
    assert decoded.schema_version == 2 and decoded.data.correction_count == 5


@pytest.mark.parametrize("version", [0, -1, 3, 99, 2**63 - 1, 2**63, 10**30])
@pytest.mark.parametrize("topic", [SPELLCHECK, topics.BATCH_ESSAYS_REGISTERED_TOPIC])
def test_a_version_no_model_knows_is_unsupported(topic: str, version: int) -> None:
    sample = samples.sample_of(topic)
    value = raw({**sample, "schema_version": version})
    with pytest.raises(UnsupportedSchemaVersion, match=f"schema_version {version} of {topic}"):
        decode_event(topic, value)
    with pytest.raises(UnsupportedSchemaVersion):  # whatever its payload holds
        decode_event(topic, raw({**sample, "schema_version": version, "data": {"anything": True}}))


@pytest.mark.parametrize(
    "sample",
    [
        samples.spellcheck_as_schema_2(samples.spellcheck_result("b1", "e1")) | {"schema_version": 1},
        samples.spellcheck_result("b1", "e1") | {"schema_version": 2},
        samples.spellcheck_result("b1", "e1") | {"schema_version": "2"},
        samples.spellcheck_result("b1", "e1") | {"schema_version": 1.0},
    ],
    ids=["v2-payload-stated-v1", "v1-payload-stated-v2", "version-as-string", "version-as-float"],
)
def test_a_payload_not_of_the_version_it_states_is_a_schema_error(sample: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_event(SPELLCHECK, raw(sample))
    assert all(error["type"] != "json_invalid" for error in caught.value.errors())


@pytest.mark.parametrize("value", [b"not json", b'{"schema_version": 2', b"[1, 2]", b'"schema_version": 99'])
def test_bytes_that_are_no_envelope_are_undecodable_or_invalid_not_unsupported(value: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_event(SPELLCHECK, value)


async def test_an_unsupported_version_is_parked_with_its_bytes_and_the_next_record_is_applied() -> None:
    store = InMemoryStore()
    future = raw(samples.spellcheck_result("b1", "e1") | {"schema_version": 99})
    records = [
        record_of(samples.batch_registered("b1", ["e1"])),
        record_of({}, topic=SPELLCHECK, value=future),
        record_of(samples.spellcheck_as_schema_2(samples.spellcheck_result("b1", "e1", corrections=4))),
    ]

    report = await process_batch(records, InMemoryUnitOfWork(store), SetSeenEventHints(), RecordingChangeSink())

    assert [(record.value, reason) for record, reason, _, _ in store.parked] == [
        (future, ParkReason.UNSUPPORTED_VERSION)
    ]
    assert "schema_version 99" in store.parked[0][2]
    assert report.outcomes[SPELLCHECK, "parked"] == 1 and report.outcomes[SPELLCHECK, "success"] == 1
    spellcheck = store.batches["b1"].essays["e1"].spellcheck
    assert spellcheck is not None and spellcheck.correction_count == 4
