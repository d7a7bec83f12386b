"""Consumer-group helpers for tests and benchmarks on the real broker."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from common_core.topics import CONSUMED_TOPICS


async def position_group_at_end(bootstrap_servers: str, group: str) -> None:
    """Commit the current end offsets of the consumed topics for `group`: a worker joining it starts
    with what is published from now on, not with the topics' history."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()  # an unsubscribed consumer keeps no metadata
        partitions = [
            TopicPartition(topic, p) for topic in CONSUMED_TOPICS for p in cluster.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
    finally:
        await consumer.stop()


async def commit_offsets(bootstrap_servers: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for `group`, as a member that consumed up to them would have."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
