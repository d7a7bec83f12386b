"""The worker is never stuck: whatever bytes arrive are applied or parked with a reason, and an event
published after them is applied within a bounded time."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common_core import topics
from result_aggregator_service.adapters.tables import parked_events
from result_aggregator_service.config import Settings
from result_aggregator_service.tests.contract import sample_envelopes as samples
from tests.conftest import wait_for
from tests.test_end_to_end import claimed, sessions

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("worker_process")]
__all__ = ["sessions"]  # the fixture, shared with the end-to-end module

Place = tuple[str, int, int]  # topic, partition, offset
SENTINEL_WITHIN_SECONDS = 120


async def parked_reasons(sessions: async_sessionmaker[AsyncSession], places: Sequence[Place]) -> dict[Place, str]:
    columns = (parked_events.c.topic, parked_events.c.partition, parked_events.c.offset)
    reasons: dict[Place, str] = {}
    async with sessions() as session:
        for start in range(0, len(places), 1000):
            query = select(*columns, parked_events.c.reason).where(tuple_(*columns).in_(places[start : start + 1000]))
            reasons.update({(t, p, o): reason for t, p, o, reason in await session.execute(query)})
    return reasons


async def sentinels_are_applied(
    producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession], places: Sequence[Place]
) -> None:
    """A valid event published after the bad ones on each of their partitions is applied in time."""
    sentinels = []
    for topic, partition in sorted({(topic, partition) for topic, partition, _ in places}):
        sentinel = samples.sample_of(topic)
        await producer.send_and_wait(topic, samples.to_bytes(sentinel), partition=partition)
        sentinels.append(sentinel)
    await wait_for(lambda: claimed(sessions, *sentinels), within=SENTINEL_WITHIN_SECONDS, what="the sentinels")


def publish_raw(settings: Settings, records: list[dict[str, object]]) -> list[Place]:
    """Records with arbitrary header-key bytes, through the pure-Python builder in its own process."""
    lines = "".join(json.dumps(record) + "\n" for record in records)
    done = subprocess.run(
        [sys.executable, "-m", "tests.raw_producer", settings.kafka_bootstrap_servers],
        input=lines.encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    offsets = [int(line) for line in done.stdout.split()]
    return [(str(r["topic"]), int(str(r["partition"])), offset) for r, offset in zip(records, offsets, strict=True)]


async def test_nul_bytes_and_invalid_utf8_in_keys_headers_and_bodies_are_parked_and_the_next_event_applied(
    settings: Settings, kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    valid = samples.to_bytes(samples.batch_registered(samples.new_id("batch-"), ["e1"]))
    topic = topics.BATCH_ESSAYS_REGISTERED_TOPIC
    records: list[dict[str, object]] = [
        {"key": "00ff6b", "value": b"\x00\xff{".hex(), "headers": [["6b00", "00"]]},  # NUL in a header key
        {"key": None, "value": b"{\xc3\x28}".hex(), "headers": [["ff6b6579", "ff"]]},  # a key that is not UTF-8
        {"key": "ff", "value": valid.replace(b'"e1"', b'"e\\u00001"').hex(), "headers": [["6b", "ff00"]]},
        {"key": "00", "value": b"\xed\xa0\x80".hex(), "headers": [["c328", "c328"], ["00", ""]]},
    ]
    records = [{**record, "topic": topic, "partition": n % 3} for n, record in enumerate(records)]

    places = publish_raw(settings, records)
    await sentinels_are_applied(kafka_producer, sessions, places)

    reasons = await parked_reasons(sessions, places)
    assert set(reasons) == set(places)
    assert reasons[places[0]] == "undecodable"
    assert reasons[places[1]] == reasons[places[3]] == "unreadable"  # the Kafka client refuses those header keys
    assert reasons[places[2]] in {"schema_invalid", "internal"}  # a NUL in an id: no database column holds it


async def test_a_record_near_the_broker_size_limit_is_parked(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], kafka_producer: AIOKafkaProducer
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=2_000_000)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topics.SPELLCHECK_RESULTS_TOPIC, b"{" + b"x" * 1_000_000)
    finally:
        await producer.stop()
    place = (sent.topic, sent.partition, sent.offset)
    await sentinels_are_applied(kafka_producer, sessions, [place])
    assert await parked_reasons(sessions, [place]) == {place: "undecodable"}


async def test_ten_thousand_random_byte_strings_are_each_parked_with_a_reason(
    kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    rng = random.Random()
    consumed = list(topics.CONSUMED_TOPICS)
    sends = [
        await kafka_producer.send(rng.choice(consumed), rng.randbytes(rng.randrange(0, 200)), key=rng.randbytes(4))
        for _ in range(10_000)
    ]
    sent = await asyncio.gather(*sends)
    places = [(record.topic, record.partition, record.offset) for record in sent]
    await sentinels_are_applied(kafka_producer, sessions, places)

    reasons = await parked_reasons(sessions, places)
    assert len(reasons) == len(places)
    assert set(reasons.values()) <= {"undecodable", "schema_invalid"}


async def test_a_reply_to_header_makes_the_worker_publish_nothing(
    settings: Settings, kafka_producer: AIOKafkaProducer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    replies_topic = "huleedu.e2e.replies.v1"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(replies_topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    event = samples.batch_registered(samples.new_id("batch-"), ["e1"])
    reply_to = [("Faust-Ag-ReplyTo", replies_topic.encode()), ("Faust-Ag-CorrelationId", b"c-1")]
    await kafka_producer.send_and_wait(event["event_type"], samples.to_bytes(event), headers=reply_to)
    await wait_for(lambda: claimed(sessions, event), within=SENTINEL_WITHIN_SECONDS, what="the event")

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(replies_topic, 0)])
    finally:
        await consumer.stop()
    assert list(ends.values()) == [0]
