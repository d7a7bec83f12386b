"""Records of many partitions handed on in timestamp order (adapters/record_alignment.py)."""

from __future__ import annotations

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from result_aggregator_service.adapters.record_alignment import AlignedRecords
from result_aggregator_service.service_layer.ports import RawRecord

A, B = TopicPartition("a", 0), TopicPartition("b", 0)


def records(tp: TopicPartition, *stamps: int, first_offset: int = 0) -> list[RawRecord]:
    return [
        RawRecord(tp.topic, tp.partition, first_offset + n, None, b"", timestamp_ms=stamp)
        for n, stamp in enumerate(stamps)
    ]


def stamps(taken: list[RawRecord]) -> list[int | None]:
    return [record.timestamp_ms for record in taken]


def test_records_of_partitions_that_are_caught_up_go_earliest_first() -> None:
    aligned = AlignedRecords()
    aligned.add(records(A, 1, 3, 5) + records(B, 2, 4, 6))
    assert stamps(aligned.take(10, {A: False, B: False})) == [1, 2, 3, 4, 5, 6]
    assert aligned.holding() == 0


def test_the_cap_leaves_the_latest_held() -> None:
    aligned = AlignedRecords()
    aligned.add(records(A, 1, 3, 5) + records(B, 2, 4, 6))
    assert stamps(aligned.take(4, {})) == [1, 2, 3, 4]
    assert (aligned.held(A), aligned.held(B)) == (1, 1)


def test_a_partition_behind_that_ran_out_holds_back_later_records_until_its_next_ones_arrive() -> None:
    aligned = AlignedRecords()
    aligned.add(records(A, 1, 2) + records(B, 3, 10, 11))
    assert stamps(aligned.take(10, {A: True, B: False})) == [1, 2]  # A may still deliver something before 3
    assert stamps(aligned.take(10, {A: True, B: False})) == []
    aligned.add(records(A, 4, 12, first_offset=2))
    assert stamps(aligned.take(10, {A: False, B: False})) == [3, 4, 10, 11, 12]


def test_without_waiting_nothing_is_held_back() -> None:
    aligned = AlignedRecords()
    aligned.add(records(B, 3, 10))
    assert stamps(aligned.take(10, {A: True, B: False})) == []  # A never delivered: it may hold anything
    assert stamps(aligned.take(10, {A: True, B: False}, wait=False)) == [3, 10]


def test_forgotten_partitions_hold_nothing_and_bound_nothing() -> None:
    aligned = AlignedRecords()
    aligned.add(records(A, 1) + records(B, 2))
    aligned.forget([A])
    assert (aligned.held(A), aligned.holding()) == (0, 1)
    assert stamps(aligned.take(10, {B: False})) == [2]


@given(st.lists(st.tuples(st.sampled_from([A, B]), st.integers(0, 50)), max_size=40), st.integers(1, 7))
def test_each_partition_keeps_its_offset_order_and_nothing_is_lost_or_repeated(
    arrivals: list[tuple[TopicPartition, int]], cap: int
) -> None:
    aligned, sent = AlignedRecords(), list[RawRecord]()
    offsets = {A: 0, B: 0}
    for tp, stamp in arrivals:
        aligned.add(records(tp, stamp, first_offset=offsets[tp]))
        offsets[tp] += 1
        sent += aligned.take(cap, {A: False, B: False})
    while aligned.holding():
        sent += aligned.take(cap, {})
    for tp in (A, B):
        assert [r.offset for r in sent if r.topic == tp.topic] == list(range(offsets[tp]))
