"""Ingestion rate through the real path: Kafka → worker process → PostgreSQL (+ Redis).

For each configuration a worker process is started on a fresh consumer group positioned at the end of
the topics; then, `--runs` times, `--events` new events (whole batch lifecycles) are published and the
clock stops when the worker's own counter (`ras_events_processed_total`) has counted all of them. The
baseline is the same worker folding one event per transaction; the ratio is measured in the same run.

    .venv/bin/python bench/ingest_rate.py [--events 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from local_stack import ensure_stack
from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.tests.scenarios import lifecycle
from tests.kafka_groups import position_group_at_end

LOG = Path(__file__).resolve().parents[1] / ".local-stack" / "bench-logs"
# name -> (micro-batch size, share of --events it is timed on: the baseline is ~10x slower)
CONFIGS = {"micro-batches of 500": ("500", 1.0), "baseline: one event per transaction": ("1", 0.2)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        module = "result_aggregator_service.entrypoints.worker"
        return subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=log)


async def _processed(client: httpx.AsyncClient) -> float:
    try:
        text = (await client.get("/metrics")).text
    except httpx.TransportError:
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("ras_events_processed_total{")
    )


def _events(count: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    while len(events) < count:
        batch = f"bench-{uuid.uuid4()}"
        events += lifecycle(batch, [f"{batch}-essay-{n}" for n in range(3)], user_id="bench-user")
    return events[:count]


async def _publish(producer: AIOKafkaProducer, events: list[dict[str, object]]) -> None:
    futures = []
    for event in events:
        data = event["data"]
        assert isinstance(data, dict)
        key = str(data.get("batch_id") or data.get("entity_id")).encode()
        futures.append(await producer.send(str(event["event_type"]), json.dumps(event).encode(), key=key))
    await asyncio.gather(*futures)


async def _wait_until(client: httpx.AsyncClient, target: float, deadline: float) -> None:
    while await _processed(client) < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"worker did not process the events in time (see {LOG})")
        await asyncio.sleep(0.05)


async def drain_rate(env: dict[str, str], batch_size: str, events: int) -> float:
    """Publish `events` for a fresh group, then start a worker and time it from its first counted event
    to its last: the worker's own rate, without the producer or the group join on the clock."""
    group, port = f"ras-bench-{uuid.uuid4().hex[:8]}", _free_port()
    await position_group_at_end(env["KAFKA_BOOTSTRAP_SERVERS"], group)
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], linger_ms=5, acks="all")
    await producer.start()
    try:
        await _publish(producer, _events(events))
    finally:
        await producer.stop()
    worker_env = {
        **os.environ,
        **env,
        "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
        "RESULT_AGGREGATOR_MICRO_BATCH_MAX_EVENTS": batch_size,
        "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
        "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
    }
    LOG.mkdir(parents=True, exist_ok=True)
    worker = _start_worker(worker_env, LOG / f"worker-{batch_size}.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await _wait_until(client, 1, time.monotonic() + 120)
            first_count, started = await _processed(client), time.monotonic()
            await _wait_until(client, events, started + 600)
            return (events - first_count) / (time.monotonic() - started)
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = ensure_stack()
    await asyncio.to_thread(upgrade_to_head, env["DATABASE_URL"])
    medians = {}
    for name, (batch_size, share) in CONFIGS.items():
        rates = [await drain_rate(env, batch_size, int(args.events * share)) for _ in range(args.runs)]
        medians[name] = statistics.median(rates)
        print(f"{name:38s} runs: {', '.join(f'{r:,.0f}' for r in rates)} events/s; median {medians[name]:,.0f}")
    baseline, micro = medians["baseline: one event per transaction"], medians["micro-batches of 500"]
    print(f"ratio micro-batched / baseline (medians): {micro / baseline:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
