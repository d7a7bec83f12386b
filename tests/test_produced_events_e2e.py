"""Real Kafka → worker → outbox → relay → Kafka: the events of brief §6 read back with a plain consumer and
compared, field by field, with what the brief's tables expect (tests/published_events.py).

Needs the relay (the worker publishes the outbox): passes once it is merged."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from common_core.topics import PRODUCED_TOPICS
from result_aggregator_service.config import Settings
from result_aggregator_service.lifecycles import batch_lifecycle, delivered
from result_aggregator_service.tests.contract import sample_envelopes as samples
from result_aggregator_service.tests.published_events import ExpectedEvent, assert_matches, expected_events
from tests.conftest import publish, wait_for

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("worker_process")]


async def _consumer_at_end(bootstrap_servers: str) -> AIOKafkaConsumer:
    """A plain consumer of every partition of the three produced topics (created if missing), from their
    current end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        for topic in PRODUCED_TOPICS:  # one by one: an existing topic fails only its own request
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        described = await admin.describe_topics(list(PRODUCED_TOPICS))
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(partitions)
    for tp, offset in (await consumer.end_offsets(partitions)).items():
        consumer.seek(tp, offset)
    return consumer


async def test_every_lifecycle_is_announced_once_per_rule_on_the_produced_topics(
    settings: Settings, kafka_producer: AIOKafkaProducer
) -> None:
    consumer = await _consumer_at_end(settings.kafka_bootstrap_servers)
    try:
        rng, teacher = random.Random(), samples.new_id("teacher-")
        lives = [batch_lifecycle(rng, teacher, spellcheck_failure_rate=rate) for rate in (0.0, 0.3, 0.6)]
        sent = [
            list(lives[0].events),  # in order
            delivered(lives[1].events, rng, out_of_order=1.0, duplicated=0.5),  # shuffled, with duplicates
            [*lives[2].events[1:], lives[2].events[0]],  # results before registration
        ]
        expected: dict[str, ExpectedEvent] = {}
        for life, events in zip(lives, sent, strict=True):
            expected.update(expected_events(life.events))
            for event in events:
                await publish(kafka_producer, event)
        keys = {teacher.encode(), *(life.batch_id.encode() for life in lives)}
        received: dict[str, list[tuple[str, bytes, bytes, dict[str, bytes]]]] = {}

        async def all_received() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if record.key in keys:
                        event_id = json.loads(record.value)["event_id"]
                        copy = (record.topic, record.key, record.value, dict(record.headers))
                        received.setdefault(event_id, []).append(copy)
            return received.keys() >= expected.keys()

        await wait_for(all_received, within=90, what=f"the {len(expected)} expected events on the produced topics")
        assert received.keys() == expected.keys(), "an event no rule makes due was published"
        for event_id, copies in received.items():
            # the relay is at least once: a re-published copy carries the same id and the same bytes
            assert len({value for _, _, value, _ in copies}) == 1
            topic, key, value, headers = copies[0]
            assert (topic, key.decode()) == (expected[event_id].topic, expected[event_id].key)
            assert_matches(value, expected[event_id])
            assert headers["event_id"].decode() == event_id
            assert headers["event_type"].decode() == topic
            assert headers["content_type"].decode() == "application/json"
    finally:
        await consumer.stop()
