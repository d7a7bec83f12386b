"""The record source's pausing against a scripted client (the pure part of what the real broker tests
check): a partition it paused is never left paused holding nothing, one running low fetches again
before the next micro-batch needs it, and it tops up nothing while a rebalance is under way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from result_aggregator_service.adapters.kafka_source import KafkaRecordSource
from result_aggregator_service.service_layer.ports import RawRecord

BACKLOG, QUIET = TopicPartition("backlog", 0), TopicPartition("quiet", 0)


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None = None
    value: bytes = b"{}"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class ScriptedClient:
    """Each partition's log as timestamps; `fetched` is how far the client has buffered each one."""

    logs: dict[TopicPartition, list[int]]
    fetched: dict[TopicPartition, int]
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    polls_while_rebalancing: int = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.logs[tp])

    async def position(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, 0)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)

    async def getmany(self, timeout_ms: int = 0, max_records: int = 1) -> dict[TopicPartition, list[Any]]:
        fetched: dict[TopicPartition, list[Any]] = {}
        for tp in sorted(self.logs, key=str):
            start = self.positions.get(tp, 0)
            count = min(self.fetched[tp] - start, max_records - sum(map(len, fetched.values())))
            if tp in self.paused or count <= 0:
                continue
            fetched[tp] = [_Message(tp.topic, tp.partition, o, self.logs[tp][o]) for o in range(start, start + count)]
            self.positions[tp] = start + count
        return fetched


async def test_a_paused_partition_that_a_top_up_empties_fetches_again() -> None:
    # a backlog partition fetched 20 ahead, and a partition whose few records come while micro-batches wait
    client = ScriptedClient({BACKLOG: list(range(100, 200)), QUIET: [10, 103, 105, 110, 111]}, {BACKLOG: 100, QUIET: 1})
    source = KafkaRecordSource(client, ["backlog", "quiet"])
    await source._listener.on_partitions_assigned(set(client.logs))
    handed_on: list[RawRecord] = []
    for before_its_turn, after_it in ((2, 3), (5, 5)):  # the quiet partition's records trickle in
        batch = await source.next_batch(20, 0.01)  # the backlog partition, holding 20, is paused
        client.fetched[QUIET] = before_its_turn
        handed_on += batch + await source.arrived(20 - len(batch))  # the last top-up empties it
        client.fetched[QUIET] = after_it
    for _ in range(20):
        batch = await source.next_batch(20, 0.01)
        handed_on += batch + await source.arrived(20 - len(batch))
    assert sorted(r.offset for r in handed_on if r.topic == "backlog") == list(range(100))  # none lost, none twice
    assert not client.paused


async def test_while_much_is_held_a_partition_running_low_fetches_again() -> None:
    # a long backlog at micro-batches of 16: three micro-batches' worth held in all
    full, low, between = TopicPartition("full", 0), TopicPartition("low", 0), TopicPartition("between", 0)
    client = ScriptedClient({full: [], BACKLOG: [], low: [], between: []}, {})
    source = KafkaRecordSource(client, ["full", "backlog", "low", "between"])
    await source._listener.on_partitions_assigned(set(client.logs))
    _hold(source, {full: 22, BACKLOG: 18, low: 5, between: 3})
    source._pause_or_resume(16)
    assert client.paused == {full, BACKLOG, low}  # more than a quarter held: each waits
    # the next micro-batch took most of theirs: at an eighth or less a paused one refills (while the
    # micro-batch in hand is applied, instead of cutting the next one short at its last record)...
    source._aligned.forget(client.logs)
    _hold(source, {full: 30, BACKLOG: 2, low: 3, between: 4})
    source._pause_or_resume(16)
    # ...and between the two marks nothing changes, so no partition is paused and resumed on every call
    assert client.paused == {full, low}


async def test_nothing_is_topped_up_while_a_rebalance_is_under_way() -> None:
    client = ScriptedClient({BACKLOG: [1, 2, 3]}, {BACKLOG: 3})
    source = KafkaRecordSource(client, ["backlog"])
    assert await source.arrived(10) == []  # before the first assignment
    await source._listener.on_partitions_assigned({BACKLOG})
    assert [r.offset for r in await source.arrived(10)] == [0, 1, 2]
    await source._listener.on_partitions_revoked({BACKLOG})
    client.fetched[BACKLOG], client.logs[BACKLOG] = 4, [1, 2, 3, 4]
    assert await source.arrived(10) == []


def _hold(source: KafkaRecordSource, counts: dict[TopicPartition, int]) -> None:
    source._aligned.add(
        RawRecord(tp.topic, tp.partition, offset, None, b"{}", timestamp_ms=offset)
        for tp, count in counts.items()
        for offset in range(count)
    )
