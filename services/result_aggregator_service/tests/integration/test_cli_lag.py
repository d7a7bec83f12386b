"""`ras lag` against the real Kafka: a consumer group that committed offsets on a topic whose records
carry known timestamps."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from result_aggregator_service.config import Settings
from result_aggregator_service.tests.integration.cli_support import json_of, one_line_error, ras
from tests.kafka_groups import commit_offsets

MINUTE_MS = 60_000


@pytest.fixture
async def topic_with_history(settings: Settings) -> AsyncIterator[tuple[str, float]]:
    """A fresh topic: partition 0 holds 5 records stamped 120, 119, ... 116 s ago; partition 1 holds 3
    stamped 60, 59, 58 s ago. Yields the topic and the time (s) the stamps count from."""
    topic, now_ms = f"ras-lag-test-{uuid.uuid4().hex[:12]}", int(time.time() * 1000)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for partition, count, age_ms in ((0, 5, 2 * MINUTE_MS), (1, 3, MINUTE_MS)):
            for n in range(count):
                stamp = now_ms - age_ms + n * 1000
                await producer.send_and_wait(topic, b"{}", partition=partition, timestamp_ms=stamp)
    finally:
        await producer.stop()
    try:
        yield topic, now_ms / 1000
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def test_lag_per_partition_in_records_and_in_seconds(
    settings: Settings, topic_with_history: tuple[str, float]
) -> None:
    topic, stamped_from = topic_with_history
    group = f"ras-lag-test-{uuid.uuid4().hex[:12]}"
    await commit_offsets(
        settings.kafka_bootstrap_servers, group, {TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 3}
    )

    result = await ras("lag", "--group", group, "--topic", topic, "--json")
    assert result.exit_code == 0, result.output
    report = json_of(result)
    elapsed = time.time() - stamped_from
    first, second = report["partitions"]
    # partition 0: consumed 2 of 5; the oldest unconsumed record (offset 2) was stamped 118 s before `stamped_from`
    assert {k: first[k] for k in ("topic", "partition", "committed", "end", "lag")} == {
        "topic": topic, "partition": 0, "committed": 2, "end": 5, "lag": 3,
    }  # fmt: skip
    assert 118 <= first["lag_seconds"] <= 118 + elapsed + 1
    assert second == {"topic": topic, "partition": 1, "committed": 3, "end": 3, "lag": 0, "lag_seconds": 0.0}
    assert (report["group"], report["total_lag"], report["max_lag_seconds"]) == (group, 3, first["lag_seconds"])


async def test_a_group_that_never_committed_lags_by_the_whole_partition(
    settings: Settings, topic_with_history: tuple[str, float]
) -> None:
    topic, stamped_from = topic_with_history
    result = await ras("lag", "--group", f"never-{uuid.uuid4().hex}", "--topic", topic, "--json")
    assert result.exit_code == 0, result.output
    rows = [(p["partition"], p["committed"], p["end"], p["lag"]) for p in json_of(result)["partitions"]]
    assert rows == [(0, None, 5, 5), (1, None, 3, 3)]
    elapsed = time.time() - stamped_from
    ages = [p["lag_seconds"] for p in json_of(result)["partitions"]]
    assert 120 <= ages[0] <= 120 + elapsed + 1 and 60 <= ages[1] <= 60 + elapsed + 1


async def test_the_table_shows_the_service_group_on_its_topics(settings: Settings) -> None:
    result = await ras("lag")
    assert result.exit_code == 0, result.output
    assert settings.consumer_group in result.stdout and "total" in result.stdout


async def test_an_unknown_topic_exits_1_and_an_unreachable_broker_exits_3(settings: Settings) -> None:
    unknown = await ras("lag", "--topic", "no-such-topic-here")
    assert unknown.exit_code == 1
    assert one_line_error(unknown) == "error: unknown topic(s): no-such-topic-here"

    unreachable = await ras("lag", env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert unreachable.exit_code == 3
    assert one_line_error(unreachable).startswith("error: unreachable: ")
