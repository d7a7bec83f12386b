"""The worker's record source on the real broker: records of several partitions handed on in timestamp
order, a partition holding a micro-batch's worth paused, and offsets committed only for what was handed on."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from result_aggregator_service.adapters.kafka_source import KafkaRecordSource
from result_aggregator_service.config import Settings
from result_aggregator_service.service_layer.ports import RawRecord

pytestmark = pytest.mark.infra


async def _topics(servers: str, count: int) -> list[str]:
    names = [f"ras-test-source-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1) for name in names])
    finally:
        await admin.close()
    return names


async def _source(servers: str, topics: list[str], group: str) -> KafkaRecordSource:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    source = KafkaRecordSource(consumer, topics)
    await source.start()
    return source


async def _drain(source: KafkaRecordSource, expected: int, cap: int) -> list[list[RawRecord]]:
    """Micro-batches until `expected` records came (or twice as many polls)."""
    batches: list[list[RawRecord]] = []
    for _ in range(2 * expected + 10):
        if sum(map(len, batches)) >= expected:
            break
        if batch := await source.next_batch(cap, 1.0):
            batches.append(batch)
    return batches


def _stamp(record: RawRecord) -> int:
    assert record.timestamp_ms is not None
    return record.timestamp_ms


async def _backlog(servers: str, count: int) -> list[str]:
    """Two new topics holding `count` records between them, timestamps 1,000 on, alternating; the early
    topic gets all its records first, as a backlog of one topic runs ahead of another's."""
    early_topic, late_topic = await _topics(servers, 2)
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for stamp in range(1_000, 1_000 + count, 2):
            await producer.send(early_topic, str(stamp).encode(), timestamp_ms=stamp)
        for stamp in range(1_001, 1_000 + count, 2):
            await producer.send(late_topic, str(stamp).encode(), timestamp_ms=stamp)
        await producer.flush()
    finally:
        await producer.stop()
    return [early_topic, late_topic]


async def test_a_backlog_of_several_partitions_is_handed_on_in_timestamp_order(settings: Settings) -> None:
    servers = settings.kafka_bootstrap_servers
    early_topic, late_topic = await _backlog(servers, 600)

    group = f"ras-test-{uuid.uuid4().hex[:8]}"
    source = await _source(servers, [early_topic, late_topic], group)
    try:
        batches = await _drain(source, 600, cap=50)
        handed_on = [_stamp(record) for batch in batches for record in batch]
        assert sorted(handed_on) == list(range(1_000, 1_600))  # every record once
        assert handed_on == sorted(handed_on)  # earliest first across the two partitions
        assert all(len(batch) <= 50 for batch in batches)
        await source.commit(batches[0])
    finally:
        await source.stop()

    # only what was handed on and committed is let go: a new member starts after the first micro-batch
    source = await _source(servers, [early_topic, late_topic], group)
    try:
        again = [_stamp(record) for batch in await _drain(source, 550, cap=600) for record in batch]
        assert again == list(range(_stamp(batches[0][-1]) + 1, 1_600))
    finally:
        await source.stop()


async def test_micro_batches_of_one_record_drain_a_backlog_of_several_partitions_in_order(settings: Settings) -> None:
    servers = settings.kafka_bootstrap_servers
    topics = await _backlog(servers, 40)
    source = await _source(servers, topics, f"ras-test-{uuid.uuid4().hex[:8]}")
    try:  # every partition that held one record was paused: each must be resumed once it holds none
        batches = await _drain(source, 40, cap=1)
    finally:
        await source.stop()
    assert [_stamp(record) for batch in batches for record in batch] == list(range(1_000, 1_040))


async def test_records_topped_up_without_waiting_keep_the_order_and_come_once(settings: Settings) -> None:
    servers = settings.kafka_bootstrap_servers
    topics = await _backlog(servers, 600)
    source = await _source(servers, topics, f"ras-test-{uuid.uuid4().hex[:8]}")
    try:  # as the worker does: a micro-batch, then what arrived while it waited for its turn
        handed_on: list[int] = []
        for _ in range(200):
            if len(handed_on) >= 600:
                break
            batch = await source.next_batch(50, 1.0)
            batch += await source.arrived(50 - len(batch))
            assert len(batch) <= 50
            handed_on += [_stamp(record) for record in batch]

        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await source.arrived(50) == []  # nothing more: back at once, not after an idle wait
        assert loop.time() - started < 0.5
    finally:
        await source.stop()
    assert handed_on == list(range(1_000, 1_600))
