"""Freshness: from publishing an event to the API answering with it, under a background load.

A worker and an API process (response cache on) run against a consumer group positioned at the end of
the topics. While whole lifecycles are published in the background at `--rate` events/s, a marker
registration is published every 100 ms and polled through `GET /internal/v1/batches/{id}/status` until
it answers 200. The bare baseline, measured in the same run: a plain consumer receiving the same
markers (the broker's own publish-to-delivery time, which no consumer can beat).

    .venv/bin/python bench/freshness.py [--rates 0 1000] [--markers 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
import uuid
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import harness
from common_core.topics import BATCH_ESSAYS_REGISTERED_TOPIC
from local_stack import ensure_stack
from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.wire_events import batch_registered
from tests.kafka_groups import position_group_at_end

API_KEY = "bench-freshness-key"
HEADERS = {"X-Internal-API-Key": API_KEY, "X-Service-ID": "bff-teacher-service"}


def background_load(servers: str, rate: int, running: EventType) -> None:
    """Whole lifecycles at `rate` events/s, sent in slices every 10 ms, while `running` is set. In a process
    of its own: making and encoding the events (30 ms per thousand) would otherwise stall the loop that
    times the markers, and count in their latency."""

    async def send_until_stopped() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=0, acks="all")
        await producer.start()
        pending: list[dict[str, Any]] = []
        tick = time.perf_counter()
        try:
            while running.is_set():
                if len(pending) < rate:
                    pending += harness.lifecycle_events(rate)
                for event in pending[: max(rate // 100, 1)]:
                    await producer.send(event["event_type"], json.dumps(event).encode(), key=harness.key_of(event))
                del pending[: max(rate // 100, 1)]
                tick += 0.01
                await asyncio.sleep(max(tick - time.perf_counter(), 0))
        finally:
            await producer.stop()

    asyncio.run(send_until_stopped())


async def marker_latency(producer: AIOKafkaProducer, client: httpx.AsyncClient, sent_at: dict[str, float]) -> float:
    batch_id = f"marker-{uuid.uuid4()}"
    event = batch_registered(batch_id, ["e1"], user_id="bench-marker")
    started = sent_at[batch_id] = time.perf_counter()
    await producer.send(BATCH_ESSAYS_REGISTERED_TOPIC, json.dumps(event).encode(), key=batch_id.encode())
    while (await client.get(f"/internal/v1/batches/{batch_id}/status")).status_code != 200:
        if time.perf_counter() - started > 30:
            raise SystemExit(f"marker {batch_id} not visible after 30 s (logs in {harness.LOG})")
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def delivered(consumer: AIOKafkaConsumer, sent_at: dict[str, float], out: list[float]) -> None:
    """The bare baseline: when a plain consumer receives each marker."""
    while True:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            now = time.perf_counter()
            out += [now - sent_at[key] for r in records if (key := (r.key or b"").decode()) in sent_at]


async def scenario(servers: str, api: httpx.AsyncClient, rate: int, markers: int) -> tuple[list[float], list[float]]:
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=0, acks="all")
    consumer = AIOKafkaConsumer(BATCH_ESSAYS_REGISTERED_TOPIC, bootstrap_servers=servers, auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    await consumer.getmany(timeout_ms=1000)  # joined and positioned before the first marker
    sent_at, bare = {}, []  # type: ignore[var-annotated]
    processes = multiprocessing.get_context("spawn")
    running = processes.Event()
    running.set()
    load = processes.Process(target=background_load, args=(servers, rate, running)) if rate else None
    if load is not None:
        load.start()
    watcher = asyncio.create_task(delivered(consumer, sent_at, bare))
    try:
        await asyncio.sleep(2)  # the load reaches its rate
        tasks = []
        for _ in range(markers):
            tasks.append(asyncio.create_task(marker_latency(producer, api, sent_at)))
            await asyncio.sleep(0.1)
        through_api = list(await asyncio.gather(*tasks))
        # figures "under load" measured without it would mislead
        load_ran_throughout = load is None or load.is_alive()
    finally:
        running.clear()
        watcher.cancel()
        if load is not None:
            await asyncio.to_thread(load.join, 30)
            if load.is_alive():
                load.terminate()
                await asyncio.to_thread(load.join)
        await consumer.stop()
        await producer.stop()
    if not load_ran_throughout:
        raise SystemExit("the background load stopped before the markers were done")
    return through_api, bare


def _metrics_port(port: int) -> dict[str, str]:
    return {"RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port)}


def _quantiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49] * 1000:6.1f} ms  p95 {cuts[94] * 1000:6.1f} ms  p99 {cuts[98] * 1000:6.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=int, nargs="+", default=[0, 1000], help="background events/s")
    parser.add_argument("--markers", type=int, default=200)
    args = parser.parse_args()
    env = ensure_stack()
    await asyncio.to_thread(upgrade_to_head, env["DATABASE_URL"])
    group = f"ras-bench-fresh-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(env["KAFKA_BOOTSTRAP_SERVERS"], group)
    worker_port, api_port = harness.free_port(), harness.free_port()
    roles = {"RESULT_AGGREGATOR_LOG_LEVEL": "WARNING", "RESULT_AGGREGATOR_ENVIRONMENT": "development"}
    worker = harness.spawn(
        "result_aggregator_service.entrypoints.worker",
        {
            **env,
            **roles,
            "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
            "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(worker_port),
        },
        "freshness-worker.log",
    )
    api = harness.spawn(
        "result_aggregator_service.entrypoints.api",
        {**env, **roles, "RESULT_AGGREGATOR_HTTP_PORT": str(api_port), "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_KEY},
        "freshness-api.log",
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=HEADERS, timeout=10) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200 and await harness.processed(
                        worker_port
                    ) >= 0
                except httpx.TransportError:
                    return False

            await harness.until(up, time.monotonic() + 120, "the worker and the API")
            await asyncio.sleep(3)  # the worker's group join
            for rate in args.rates:
                through_api, bare = await scenario(env["KAFKA_BOOTSTRAP_SERVERS"], client, rate, args.markers)
                print(f"background {rate:>5} events/s, {len(through_api)} markers")
                print(f"  publish -> API answers 200:   {_quantiles(through_api)}")
                print(f"  publish -> plain consumer:    {_quantiles(bare)}   (bare baseline)")
    finally:
        harness.stop(worker)
        harness.stop(api)


if __name__ == "__main__":
    asyncio.run(main())
