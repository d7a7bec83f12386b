"""SSE fan-out: from a worker's commit to the change arriving on 1,000 open streams of one API process.

One API process (uvicorn, as served) over a fresh database; `--streams` SSE clients (raw sockets, in
this process) on `GET /internal/v1/batches/{id}/events`, spread over `--batches` batches. Each round is
one micro-batch through the worker's own write path (`process_batch`: one slot assignment per batch,
one transaction, then the invalidation that publishes the notices); the clock starts when the commit
returned (the change sink is told) and stops when a stream reads the event of the new version. The
bare baseline, measured in the same rounds: a plain Redis pub/sub subscriber receiving the same notice
(the floor of any delivery through Redis).

    .venv/bin/python bench/sse_fanout.py [--streams 1000] [--batches 1] [--rounds 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvloop
from dishka import AsyncContainer
from redis.asyncio import Redis

from bench import harness
from local_stack import ensure_stack
from result_aggregator_service.adapters.response_cache import CHANGES_CHANNEL
from result_aggregator_service.config import Settings
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import IngestReport, process_batch
from result_aggregator_service.service_layer.ports import (
    NOTHING_SETTLED,
    BatchChange,
    ChangeSink,
    SeenEventHints,
    SettledEvents,
    UnitOfWork,
)
from result_aggregator_service.tests.fakes import record_of
from result_aggregator_service.wire_events import batch_registered, slot_assigned

API_KEY = "bench-sse-key"
HEADERS = {"X-Internal-API-Key": API_KEY, "X-Service-ID": "bff-teacher-service"}


class TimedSink:
    """The worker's change sink, noting when it is told a commit happened (right after the commit)."""

    def __init__(self, sink: ChangeSink) -> None:
        self._sink = sink
        self.committed_at = 0.0

    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        await self._sink.batches_changing(changes)

    async def batches_changed(self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED) -> None:
        self.committed_at = time.perf_counter()
        await self._sink.batches_changed(changes, settled)


class SseClient(asyncio.Protocol):
    """One stream on a bare protocol (no coroutine per read, so the client costs little): when the event
    of each version arrived. Chunks may split an event; only whole `id:` lines count."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.arrived: dict[int, float] = {}
        self.opened = asyncio.Event()
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"id: "):
                self.arrived[int(line[4:])] = at
                self.opened.set()
            elif line.startswith(b"HTTP/1.1 ") and b" 200 " not in line:
                raise SystemExit(f"stream refused: {line!r}")

    async def open(self, port: int) -> asyncio.Transport:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: self, "127.0.0.1", port)
        head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
        transport.write(f"GET /internal/v1/batches/{self.batch_id}/events HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
        return transport


async def bare_subscriber(redis_url: str, arrived: dict[tuple[str, int], float], ready: asyncio.Event) -> None:
    client = Redis.from_url(redis_url)
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANGES_CHANNEL)
        ready.set()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                notice = json.loads(message["data"])
                arrived[notice["batch_id"], notice["version"]] = time.perf_counter()


async def ingest(container: AsyncContainer, events: list[dict[str, Any]]) -> tuple[IngestReport, float]:
    """One micro-batch through the worker's write path; when its commit returned."""
    async with container() as request:
        timed = TimedSink(await request.get(ChangeSink))
        report = await process_batch(
            [record_of(e) for e in events], await request.get(UnitOfWork), await request.get(SeenEventHints), timed
        )
    return report, timed.committed_at


@contextlib.asynccontextmanager
async def api_process(env: dict[str, str], streams: int) -> AsyncIterator[tuple[int, int]]:
    port = harness.free_port()
    process = harness.spawn(
        "result_aggregator_service.entrypoints.api",
        {
            **env,
            "RESULT_AGGREGATOR_HTTP_PORT": str(port),
            "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_KEY,
            "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
            "RESULT_AGGREGATOR_LIVE_FEED_MAX_STREAMS": str(streams + 10),
        },
        "sse-fanout-api.log",
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await harness.until(up, time.monotonic() + 60, "the API's /healthz")
        yield port, process.pid
    finally:
        harness.stop(process)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(env: dict[str, str], args: argparse.Namespace) -> tuple[list[float], list[float]]:
    async with harness.fresh_database(env["DATABASE_URL"]) as database_url:
        settings = Settings(database_url=database_url, redis_url=env["REDIS_URL"], _env_file=None)
        container = make_container(settings)
        batch_ids = [f"sse-{i}-{time.time_ns()}" for i in range(args.batches)]
        essays = {b: f"{b}-e1" for b in batch_ids}

        try:
            await ingest(container, [batch_registered(b, [essays[b]], user_id="bench-sse") for b in batch_ids])
            async with api_process({**env, "DATABASE_URL": database_url}, args.streams) as (port, pid):
                return await measure(port, pid, env["REDIS_URL"], batch_ids, essays, container, args)
        finally:
            await container.close()


async def measure(
    port: int,
    pid: int,
    redis_url: str,
    batch_ids: list[str],
    essays: dict[str, str],
    container: AsyncContainer,
    args: argparse.Namespace,
) -> tuple[list[float], list[float]]:
    clients = [SseClient(batch_ids[i % len(batch_ids)]) for i in range(args.streams)]
    bare: dict[tuple[str, int], float] = {}
    ready = asyncio.Event()
    transports = [await c.open(port) for c in clients]
    tasks = [asyncio.create_task(bare_subscriber(redis_url, bare, ready))]
    through_sse: list[float] = []
    through_redis: list[float] = []
    try:
        async with asyncio.timeout(120):
            await ready.wait()
            for client in clients:
                await client.opened.wait()  # every stream sent its current state: open and listening
        api_cpu, own_cpu = cpu_seconds(pid), time.process_time()
        for _ in range(args.rounds):
            report, committed_at = await ingest(container, [slot_assigned(b, essays[b]) for b in batch_ids])
            versions = {c.batch_id: c.version for c in report.changes}
            async with asyncio.timeout(30):
                # the protocols stamp arrivals as they come; this poll only decides when the round is over
                while not delivered(clients, bare, versions):  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            through_sse += [c.arrived[versions[c.batch_id]] - committed_at for c in clients]
            through_redis += [bare[b, v] - committed_at for b, v in versions.items()]
            await asyncio.sleep(0.2)
        per_change = 1000 / args.rounds
        print(
            f"  CPU per change: API {(cpu_seconds(pid) - api_cpu) * per_change:.1f} ms, "
            f"this process (clients, commits) {(time.process_time() - own_cpu) * per_change:.1f} ms",
            flush=True,
        )
    finally:
        for transport in transports:
            transport.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return through_sse, through_redis


def delivered(clients: list[SseClient], bare: dict[tuple[str, int], float], versions: dict[str, int]) -> bool:
    return all(versions[c.batch_id] in c.arrived for c in clients) and all(k in bare for k in versions.items())


def quantile(values: list[float], q: int) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else values[0] * 1000
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=1, help="streams are spread over this many batches")
    parser.add_argument("--rounds", type=int, default=20, help="commits per run (each reaches every stream)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = ensure_stack()
    rows = []
    for run in range(1, args.runs + 1):
        sse, redis = await one_run(env, args)
        row = (quantile(sse, 50), quantile(sse, 99), quantile(redis, 50), quantile(redis, 99))
        rows.append(row)
        print(
            f"run {run}: {args.streams} streams, {len(sse)} deliveries: commit → SSE p50 {row[0]:.1f} ms p99 "
            f"{row[1]:.1f} ms | bare Redis subscriber p50 {row[2]:.1f} ms p99 {row[3]:.1f} ms",
            flush=True,
        )
    medians = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(
        f"median of {args.runs} runs: commit → delivered p50 {medians[0]:.1f} ms, p99 {medians[1]:.1f} ms "
        f"(target ≤ 100); bare Redis subscriber p50 {medians[2]:.1f} ms, p99 {medians[3]:.1f} ms; "
        f"p99 ratio {medians[1] / medians[3]:.1f}x"
    )


if __name__ == "__main__":
    uvloop.run(main())
