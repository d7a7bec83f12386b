"""`ras lag`: how far the consumer group is behind, per partition, in records and in seconds.

The seconds are the age of the oldest record the group has not consumed yet: the timestamp of the record
at the committed offset (read with a group-less consumer, so nothing is committed), compared with now.
A partition the group has never committed is counted from its first retained record (the worker's
`auto_offset_reset` is `earliest`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from result_aggregator_service.adapters.kafka_source import UNREADABLE, partition_of_unreadable
from result_aggregator_service.cli.output import JsonFlag, emit_json, fail, run, stdout, table

TIMESTAMP_BUDGET_SECONDS = 10.0


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    end: int
    lag: int
    lag_seconds: float | None  # None: the oldest unconsumed record could not be read in time


def lag(
    group: Annotated[str | None, typer.Option(help="consumer group (default: the service's)")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="a topic (repeat it); default: the subscribed ones")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Consumer lag per partition: committed offset, end offset, records behind, and seconds behind."""
    from result_aggregator_service.config import Settings

    settings = Settings()
    group = group or settings.consumer_group
    rows = run(measure(settings.kafka_bootstrap_servers, group, topic or settings.subscribed_topics))
    total, worst = sum(r.lag for r in rows), max((r.lag_seconds or 0.0 for r in rows), default=0.0)
    if as_json:
        emit_json(
            {"group": group, "partitions": [asdict(r) for r in rows], "total_lag": total, "max_lag_seconds": worst}
        )
        return
    shown: list[tuple[object, ...]] = [
        (r.topic, r.partition, r.committed, r.end, r.lag, _seconds(r.lag_seconds)) for r in rows
    ]
    shown.append(("total", "", "", "", total, _seconds(worst)))
    columns = ("topic", "partition", "committed", "end", "lag (records)", "lag (seconds)")
    stdout.print(table(f"consumer group {group}", columns, shown))


async def measure(bootstrap_servers: str, group: str, topics: list[str]) -> list[PartitionLag]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        partitions = await _partitions(admin, topics)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,  # reads only: joins no group, commits nothing
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000,
        )
        try:
            await consumer.start()
            return await _per_partition(consumer, committed, partitions)
        finally:
            await consumer.stop()
    finally:
        await admin.close()


async def _partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    described = await admin.describe_topics(sorted(set(topics)))
    if unknown := [topic["topic"] for topic in described if topic["error_code"]]:
        fail(f"unknown topic(s): {', '.join(unknown)}")
    found = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    return sorted(found, key=lambda tp: (tp.topic, tp.partition))


async def _per_partition(
    consumer: AIOKafkaConsumer, committed: dict[TopicPartition, int], partitions: list[TopicPartition]
) -> list[PartitionLag]:
    if not partitions:
        return []
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    position = {tp: committed.get(tp, starts[tp]) for tp in partitions}
    stamps = await _first_timestamps(consumer, {tp: position[tp] for tp in partitions if ends[tp] > position[tp]})
    now_ms = time.time() * 1000

    def seconds(tp: TopicPartition) -> float | None:
        if ends[tp] <= position[tp]:
            return 0.0
        return round(max(0.0, now_ms - stamps[tp]) / 1000, 3) if tp in stamps else None

    return [
        PartitionLag(tp.topic, tp.partition, committed.get(tp), ends[tp], max(0, ends[tp] - position[tp]), seconds(tp))
        for tp in partitions
    ]


async def _first_timestamps(consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The timestamp (ms) of the first record at or after each start offset, read within the budget."""
    if not starts:
        return {}
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    found: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + TIMESTAMP_BUDGET_SECONDS
    while len(found) < len(starts) and time.monotonic() < deadline:
        try:
            fetched = await consumer.getmany(timeout_ms=200)
        except UNREADABLE as error:  # its timestamp stays unknown; the poll lost the others' records
            consumer.pause(partition_of_unreadable(error))
            for tp in starts.keys() - found.keys():
                consumer.seek(tp, starts[tp])
            continue
        for tp, records in fetched.items():
            if records and tp not in found:
                found[tp] = records[0].timestamp
                consumer.pause(tp)
    return found


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"
