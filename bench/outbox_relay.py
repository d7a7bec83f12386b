"""The outbox relay against a bare producer, on the local stack's Kafka and PostgreSQL.

Throughput: `--events` outbox rows drained by a relay (connect, lead, read, send, wait for the acks, mark;
500 a round) against the same records sent by a bare idempotent producer (acks=all, 500 sends then their
acks, the relay's settings) from its start to the last ack. Wake-up: one row inserted with its NOTIFY into
an idle relay, `published_at - created_at` (commit to mark, PostgreSQL's clock) against one bare
`send_and_wait`. Interleaved runs on a new database; medians.

    .venv/bin/python bench/outbox_relay.py [--events 5000] [--runs 3] [--wakes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import make_url

from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.outbox_relay import OutboxRelay
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.tests.outbox_support import (
    OutboxEvent,
    dsn,
    outbox_events,
    wait_until_published,
    write_outbox,
)

KEYS = [f"batch-{n}" for n in range(50)]


async def _bare(settings: Settings, events: list[OutboxEvent]) -> float:
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        for n in range(0, len(events), 500):
            sent = [
                await producer.send(e.topic, e.value, key=e.key, headers=[(k, v.encode()) for k, v in e.headers])
                for e in events[n : n + 500]
            ]
            await asyncio.gather(*sent)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _relay(settings: Settings, events: list[OutboxEvent]) -> float:
    await write_outbox(settings.database_url, events)
    started = time.perf_counter()
    task = asyncio.create_task(OutboxRelay(settings, ServiceMetrics()).run())
    try:
        await wait_until_published(settings.database_url, within=300)
        return time.perf_counter() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _wakes(settings: Settings, count: int) -> tuple[list[float], list[float]]:
    """Commit-to-mark of single notified rows, and bare single send_and_wait latencies."""
    task = asyncio.create_task(OutboxRelay(settings, ServiceMetrics()).run())
    bare = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True, acks="all")
    await bare.start()
    relayed, sent = [], []
    connection = await asyncpg.connect(dsn(settings.database_url))
    try:
        await asyncio.sleep(1.0)
        for _ in range(count):
            event = outbox_events(1, KEYS)[0]
            await write_outbox(settings.database_url, [event])
            await wait_until_published(settings.database_url, within=30)
            seconds = await connection.fetchval(
                "SELECT extract(epoch FROM published_at - created_at) FROM outbox WHERE event_id = $1", event.event_id
            )
            relayed.append(float(seconds))
            started = time.perf_counter()
            await bare.send_and_wait(event.topic, event.value, key=event.key)
            sent.append(time.perf_counter() - started)
            await asyncio.sleep(0.2)  # idle again
    finally:
        await connection.close()
        await bare.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return relayed, sent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wakes", type=int, default=20)
    args = parser.parse_args()
    base = Settings()
    name = f"ras_bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn(base.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(base.database_url).set(database=name).render_as_string(hide_password=False)
    settings = base.model_copy(update={"database_url": url, "outbox_relay_poll_seconds": 30.0})
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        bare, relay = [], []
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            events = outbox_events(args.events, KEYS)
            bare.append(await _bare(settings, events))
            relay.append(await _relay(settings, outbox_events(args.events, KEYS)))
        b, r = statistics.median(bare), statistics.median(relay)
        print(f"throughput, {args.events} events, medians of {args.runs}:")
        rates = f"bare producer {args.events / b:.0f} events/s; relay {args.events / r:.0f} events/s"
        print(f"  {rates}; relay/bare {b / r:.2f}")
        relayed, sent = await _wakes(settings, args.wakes)
        rm, sm = statistics.median(relayed) * 1000, statistics.median(sent) * 1000
        print(f"wake-up, median of {args.wakes}: commit to mark {rm:.1f} ms; bare send_and_wait {sm:.1f} ms")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
