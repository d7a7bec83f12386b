"""The relay's tests: outbox rows written as the writer writes them (INSERT and NOTIFY in one transaction),
and what the relay put on the produced topics, read back from the real broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import make_url

from common_core.topics import PRODUCED_TOPICS
from result_aggregator_service.adapters.tables import OUTBOX_CHANNEL

Records = Sequence[ConsumerRecord[bytes, bytes]]


@dataclass(frozen=True)
class OutboxEvent:
    event_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, str], ...]


def outbox_events(count: int, keys: Sequence[str], topics: Sequence[str] = PRODUCED_TOPICS) -> list[OutboxEvent]:
    """`count` envelopes spread round-robin over the keys and topics (each key on several topics)."""
    events = []
    for n in range(count):
        event_id, topic, key = uuid.uuid4(), topics[n % len(topics)], keys[n % len(keys)]
        envelope = {
            "event_id": str(event_id),
            "event_type": topic,
            "event_timestamp": "2026-11-27T10:00:00Z",
            "source_service": "result_aggregator_service",
            "schema_version": 1,
            "correlation_id": str(uuid.uuid4()),
            "data_schema_uri": None,
            "data": {"batch_id": key, "sequence": n},
            "metadata": None,
        }
        headers = (("event_id", str(event_id)), ("event_type", topic), ("source_service", "result_aggregator_service"))
        events.append(OutboxEvent(event_id, topic, key.encode(), json.dumps(envelope).encode(), headers))
    return events


def dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def write_outbox(database_url: str, events: Sequence[OutboxEvent], notify: bool = True) -> None:
    """Insert the rows in the given order (ids follow it), NOTIFYing in the same transaction, as the writer does."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        async with connection.transaction():
            await connection.executemany(
                "INSERT INTO outbox (event_id, topic, key, value, headers) VALUES ($1, $2, $3, $4, $5::jsonb)",
                [(e.event_id, e.topic, e.key, e.value, json.dumps([list(h) for h in e.headers])) for e in events],
            )
            if notify:
                await connection.execute(f"NOTIFY {OUTBOX_CHANNEL}")
    finally:
        await connection.close()


async def unpublished_count(database_url: str) -> int:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    finally:
        await connection.close()


async def wait_until_published(database_url: str, within: float, what: str = "every outbox row published") -> float:
    """Seconds until no row is left unpublished; fails after `within` (a database being restarted counts
    as not yet)."""
    started = time.monotonic()
    while True:
        try:
            if await unpublished_count(database_url) == 0:
                return time.monotonic() - started
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _produced_partitions(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()  # an unsubscribed consumer keeps no metadata
    return [TopicPartition(t, p) for t in PRODUCED_TOPICS for p in sorted(cluster.partitions_for_topic(t) or ())]


async def produced_ends(bootstrap_servers: str) -> dict[TopicPartition, int]:
    """The end offsets of the produced topics now: where a test starts reading what the relay publishes."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _produced_partitions(consumer)
        return {tp: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def produced_since(
    bootstrap_servers: str, start: dict[TopicPartition, int], within: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on the produced topics from `start` up to their ends now, in offset order per partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(start))
        wanted = {tp: end for tp, end in ends.items() if end > start[tp]}
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + within
        while [tp for tp, end in wanted.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, "timed out reading the produced topics"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += [r for r in batch if r.offset < wanted.get(TopicPartition(r.topic, r.partition), 0)]
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    finally:
        await consumer.stop()


def event_id_of(record: ConsumerRecord[bytes, bytes]) -> uuid.UUID:
    assert record.value is not None
    return uuid.UUID(json.loads(record.value)["event_id"])


def copies(records: Iterable[ConsumerRecord[bytes, bytes]]) -> Counter[uuid.UUID]:
    return Counter(event_id_of(r) for r in records)


def assert_published_as_written(records: Records, written: Sequence[OutboxEvent]) -> None:
    """Every written event is on the broker (the only ones), each copy with its topic, key, value and
    headers exactly; per topic and key, events first appear in the order they were written (id order)."""
    by_id = {e.event_id: e for e in written}
    assert set(copies(records)) == set(by_id), "the broker holds other events than the ones written, or lacks some"
    first_seen: dict[tuple[str, bytes], list[uuid.UUID]] = defaultdict(list)
    seen: set[uuid.UUID] = set()
    for record in records:  # sorted by topic, partition, offset: one key's records share a partition
        event = by_id[event_id_of(record)]
        assert (record.topic, record.key, record.value) == (event.topic, event.key, event.value)
        assert [(name, value.decode()) for name, value in record.headers] == list(event.headers)
        if event.event_id not in seen:
            seen.add(event.event_id)
            first_seen[record.topic, event.key].append(event.event_id)
    written_order: dict[tuple[str, bytes], list[uuid.UUID]] = defaultdict(list)
    for event in written:
        written_order[event.topic, event.key].append(event.event_id)
    assert first_seen == written_order, "some key's events were published out of their written order"
