"""The micro-batch path against the in-memory unit of work: decode, park, claim, route, commit, announce."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from uuid import UUID

from common_core import topics
from common_core.registry import PAYLOAD_TYPE_BY_TOPIC
from result_aggregator_service.adapters.in_memory import InMemoryStore, InMemoryUnitOfWork
from result_aggregator_service.service_layer.handlers import HANDLERS_BY_TOPIC
from result_aggregator_service.service_layer.ingest import (
    IngestReport,
    decode_and_ask_hints,
    process_batch,
    topped_up,
)
from result_aggregator_service.service_layer.ports import (
    NOTHING_SETTLED,
    BatchChange,
    ParkReason,
    RawRecord,
    SettledEvents,
)
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.fakes import RecordingChangeSink, SetSeenEventHints, record_of


class Harness:
    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.hints = SetSeenEventHints()
        self.sink = RecordingChangeSink()

    async def ingest(self, *records: RawRecord) -> IngestReport:
        return await process_batch(list(records), InMemoryUnitOfWork(self.store), self.hints, self.sink)


def test_every_consumed_topic_has_a_payload_type_and_a_handler() -> None:
    assert set(PAYLOAD_TYPE_BY_TOPIC) == set(HANDLERS_BY_TOPIC) == set(topics.CONSUMED_TOPICS)


async def test_undecodable_schema_invalid_and_unknown_topic_records_are_parked_with_their_bytes() -> None:
    harness = Harness()
    invalid = samples.batch_registered("b1", ["e1"])
    del invalid["data"]["user_id"]
    records = [
        record_of({}, topic=topics.SPELLCHECK_RESULTS_TOPIC, value=b"\xff\xfe not json"),
        record_of(invalid),
        record_of(samples.slot_assigned("b1", "e1"), topic="huleedu.unmapped.v1"),
    ]
    report = await harness.ingest(*records)
    parked = {(record.value, reason) for record, reason, _, _ in harness.store.parked}
    assert parked == {
        (records[0].value, ParkReason.UNDECODABLE),
        (records[1].value, ParkReason.SCHEMA_INVALID),
        (records[2].value, ParkReason.UNKNOWN_TOPIC),
    }
    assert sum(n for (_, outcome), n in report.outcomes.items() if outcome == "parked") == 3


async def test_a_micro_batch_with_one_bad_record_still_commits_the_good_ones() -> None:
    harness = Harness()
    good = samples.batch_registered("b1", ["e1"])
    await harness.ingest(record_of({}, topic=good["event_type"], value=b"{"), record_of(good))
    assert harness.store.batches["b1"].is_registered
    assert uuid.UUID(good["event_id"]) in harness.store.claims


async def test_an_event_the_rules_reject_is_parked_and_claimed() -> None:
    harness = Harness()
    rejected = samples.batch_registered("b1", ["e1"])
    rejected["data"]["expected_essay_count"] = -1
    report = await harness.ingest(record_of(rejected))
    [(_, reason, error, event_id)] = harness.store.parked
    assert (reason, event_id) == (ParkReason.REJECTED, uuid.UUID(rejected["event_id"]))
    assert "negative" in error
    assert uuid.UUID(rejected["event_id"]) in harness.store.claims
    assert report.changes == []


async def test_the_same_event_twice_in_one_micro_batch_is_applied_once() -> None:
    harness = Harness()
    event = samples.batch_registered("b1", ["e1"])
    report = await harness.ingest(record_of(event), record_of(event))
    assert report.outcomes[event["event_type"], "success"] == 1
    assert report.outcomes[event["event_type"], "duplicate"] == 1
    assert harness.store.versions["b1"] == 1


async def test_a_redelivered_event_changes_nothing_but_announces_its_batch_again() -> None:
    harness = Harness()
    event = samples.batch_registered("b1", ["e1"], user_id="u1")
    await harness.ingest(record_of(event))
    harness.hints.ids.clear()  # the hint is lost (Redis restarted): the claim still knows
    again = await harness.ingest(record_of(event))
    assert again.outcomes[event["event_type"], "duplicate"] == 1
    assert [(c.batch_id, c.version, c.user_ids) for c in again.changes] == [("b1", 1, frozenset({"u1"}))]
    assert harness.store.versions["b1"] == 1


async def test_a_seen_hint_is_not_trusted_without_a_claim() -> None:
    harness = Harness()
    event = samples.batch_registered("b1", ["e1"])
    harness.hints.ids.add(uuid.UUID(event["event_id"]))  # a stale hint, e.g. from a restored database
    report = await harness.ingest(record_of(event))
    assert report.outcomes[event["event_type"], "success"] == 1
    assert harness.store.batches["b1"].is_registered


async def test_hints_asked_ahead_of_the_micro_batch_are_used_and_not_asked_again() -> None:
    harness = Harness()
    applied, fresh = samples.batch_registered("b1", ["e1"]), samples.batch_registered("b2", ["e1"])
    await harness.ingest(record_of(applied))
    ahead = await decode_and_ask_hints([record_of(applied), record_of(fresh)], harness.hints)
    assert ahead.hinted == frozenset({uuid.UUID(applied["event_id"])})

    class Unasked(SetSeenEventHints):
        async def seen(self, event_ids: Collection[UUID]) -> set[UUID]:
            raise AssertionError("asked again")

    report = await process_batch(ahead, InMemoryUnitOfWork(harness.store), Unasked(), harness.sink)
    assert report.outcomes[applied["event_type"], "duplicate"] == 1
    assert report.outcomes[fresh["event_type"], "success"] == 1


async def test_records_that_arrived_while_a_micro_batch_waited_go_with_it_each_event_once() -> None:
    harness = Harness()
    applied, first, second = (samples.batch_registered(b, ["e1"]) for b in ("b1", "b2", "b3"))
    await harness.ingest(record_of(applied))
    ahead = await decode_and_ask_hints([record_of(applied), record_of(first)], harness.hints)
    bad = record_of({}, topic=topics.SPELLCHECK_RESULTS_TOPIC, value=b"{")
    arrived = [record_of(first), record_of(second), bad, record_of(second)]

    batch = topped_up(ahead, arrived)
    assert list(batch.records) == [*ahead.records, *arrived]  # every record's offset is let go after it
    assert batch.hinted == ahead.hinted
    report = await process_batch(batch, InMemoryUnitOfWork(harness.store), harness.hints, harness.sink)
    assert report.outcomes[first["event_type"], "success"] == 2  # b2 and b3, each once
    assert report.outcomes[first["event_type"], "duplicate"] == 3  # b1 applied before; b2 and b3 twice
    assert [record.value for record, _, _, _ in harness.store.parked] == [b"{"]
    assert harness.store.versions == {"b1": 1, "b2": 1, "b3": 1}
    assert topped_up(ahead, []) is ahead


async def test_changes_are_announced_after_the_commit_with_the_owner() -> None:
    harness = Harness()
    await harness.ingest(record_of(samples.batch_registered("b1", ["e1"], user_id="u1")))
    await harness.ingest(record_of(samples.slot_assigned("b1", "e1")))
    assert [(c.batch_id, c.version, c.user_ids) for c in harness.sink.changes] == [
        ("b1", 1, frozenset({"u1"})),
        ("b1", 2, frozenset({"u1"})),
    ]


async def test_applied_events_are_remembered_as_hints() -> None:
    harness = Harness()
    event = samples.slot_assigned("b1", "e1")
    await harness.ingest(record_of(event))
    assert uuid.UUID(event["event_id"]) in harness.hints.ids


async def test_cached_responses_are_held_off_before_the_commit_and_released_after_it() -> None:
    harness = Harness()
    committed_versions_seen_by_the_sink: list[tuple[str, int | None]] = []

    class SnapshottingSink(RecordingChangeSink):
        async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
            committed_versions_seen_by_the_sink.append(("changing", harness.store.versions.get("b1")))
            await super().batches_changing(changes)

        async def batches_changed(
            self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED
        ) -> None:
            committed_versions_seen_by_the_sink.append(("changed", harness.store.versions.get("b1")))
            await super().batches_changed(changes, settled)

    harness.sink = SnapshottingSink()
    await harness.ingest(record_of(samples.batch_registered("b1", ["e1"])))
    assert committed_versions_seen_by_the_sink == [("changing", None), ("changed", 1)]
    assert harness.sink.changing == harness.sink.changes


async def test_the_events_a_micro_batch_settled_are_announced_applied_or_parked_redeliveries_too() -> None:
    harness = Harness()
    applied, rejected = samples.batch_registered("b1", ["e1"]), samples.batch_registered("b2", ["e1"])
    rejected["data"]["expected_essay_count"] = -1
    await harness.ingest(record_of(applied), record_of(rejected))
    assert harness.sink.settled[-1] == SettledEvents(
        [uuid.UUID(applied["event_id"])], [uuid.UUID(rejected["event_id"])]
    )
    await harness.ingest(record_of(applied))  # a redelivery: its state is committed, so it counts as applied
    assert harness.sink.settled[-1] == SettledEvents([uuid.UUID(applied["event_id"])], [])
