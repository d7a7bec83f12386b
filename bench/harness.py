"""What the benchmarks share: the stack, fresh databases, worker and API processes, publishing lifecycles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from common_core.topics import CONSUMED_TOPICS
from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.lifecycles import batch_lifecycle
from tests.kafka_groups import commit_offsets

LOG = Path(__file__).resolve().parents[1] / ".local-stack" / "bench-logs"
Offsets = dict[TopicPartition, int]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lifecycle_events(count: int, user_id: str = "bench-user") -> list[dict[str, Any]]:
    """`count` events of whole batch lifecycles (three essays each), in the order the platform sends them."""
    rng, events = random.Random(), list[dict[str, Any]]()
    while len(events) < count:
        events += batch_lifecycle(rng, user_id, essay_count=3).events
    return events[:count]


def key_of(event: dict[str, Any]) -> bytes:
    data = event["data"]
    return str(data.get("batch_id") or data.get("entity_id")).encode()


async def publish(bootstrap_servers: str, events: Iterable[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    try:
        sends = [await producer.send(e["event_type"], json.dumps(e).encode(), key=key_of(e)) for e in events]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def end_offsets(bootstrap_servers: str) -> Offsets:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(t, p) for t in CONSUMED_TOPICS for p in cluster.partitions_for_topic(t) or ()]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def group_at(bootstrap_servers: str, offsets: Offsets) -> str:
    """A new consumer group whose next records are those at `offsets`."""
    group = f"ras-bench-{uuid.uuid4().hex[:8]}"
    await commit_offsets(bootstrap_servers, group, offsets)
    return group


@contextlib.asynccontextmanager
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A new, migrated database on the stack's server, dropped afterwards (each worker run starts empty)."""
    name = f"ras_bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def spawn(module: str, env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    LOG.mkdir(parents=True, exist_ok=True)
    with (LOG / log_name).open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", module], env={**os.environ, **env}, stdout=log, stderr=log)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_megabytes(process: subprocess.Popen[bytes]) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Progress(NamedTuple):
    """A worker's `/metrics` as a drain is timed by it: `ras_events_processed_total` over every topic and
    final outcome (-1 while the worker is not up), and the Unix times of its last committed micro-batch
    and of its last partition assignment (0 before either). Both are set where they happen, so a drain
    timed by them starts and ends there, not at the poll that saw it."""

    processed: float
    last_commit: float
    assigned: float


async def processed(port: int) -> float:
    return (await progress(port)).processed


async def progress(port: int) -> Progress:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.TransportError:
        return Progress(-1.0, 0.0, 0.0)
    count, last_commit, assigned = 0.0, 0.0, 0.0
    for line in body.splitlines():
        if line.startswith("ras_events_processed_total{") and 'outcome="retryable"' not in line:
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("ras_last_commit_timestamp_seconds "):
            last_commit = float(line.rsplit(" ", 1)[1])
        elif line.startswith("ras_last_assignment_timestamp_seconds "):
            assigned = float(line.rsplit(" ", 1)[1])
    return Progress(count, last_commit, assigned)


async def until(condition: Any, deadline: float, what: str, every: float = 0.1) -> None:
    """Poll `condition` every `every` seconds (each poll of a worker costs it a metrics exposition: not
    too often while it drains)."""
    while not await condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what} (logs in {LOG})")
        await asyncio.sleep(every)
