"""Status-read latency and throughput of the API as deployed (uvicorn), cached vs uncached, on loopback.

`--requests` batches (generated lifecycles of 5 essays, `lifecycles.py`) are written through the real
write side. The API runs as `python -m result_aggregator_service.entrypoints.api`. Each of `--runs`
rounds times two passes of `--requests` GETs of /internal/v1/batches/{id}/status with `--concurrency` clients in flight:
  - uncached: the batches' cache entries are deleted first and every request asks for a different batch,
    so each one misses, queries PostgreSQL and fills the cache;
  - cached: the same requests again, now all hits (Redis only).
The API's own cache counters confirm every request was a miss (resp. a hit). Figures are the median of
the runs; latency is measured at the client, request sent to body read. The load client is aiohttp:
httpx spent ~3.6 ms of client CPU per request at concurrency 20 here and saturated before the server.

    .venv/bin/python bench/api_latency.py [--requests 2000] [--concurrency 20] [--runs 3] [--workers 1]
                                          [--server uvicorn|hypercorn]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
from redis.asyncio import Redis

from local_stack import ensure_stack
from result_aggregator_service.adapters.response_cache import batch_key
from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.config import Settings
from result_aggregator_service.lifecycles import batch_lifecycle
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, SeenEventHints, UnitOfWork
from result_aggregator_service.tests.fakes import record_of

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-internal-api-key"
AUTH = {"X-Internal-API-Key": API_KEY, "X-Service-ID": "api-gateway-service"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(settings: Settings, count: int) -> list[str]:
    rng = random.Random()
    lifecycles = [batch_lifecycle(rng, "bench", essay_count=5) for _ in range(count)]
    events = [event for lifecycle in lifecycles for event in lifecycle.events]
    container = make_container(settings)
    try:
        for start in range(0, len(events), 500):
            async with container() as request:
                await process_batch(
                    [record_of(e) for e in events[start : start + 500]],
                    await request.get(UnitOfWork),
                    await request.get(SeenEventHints),
                    await request.get(ChangeSink),
                )
    finally:
        await container.close()
    return [lifecycle.batch_id for lifecycle in lifecycles]


def _start_api(settings: Settings, port: int, workers: int, server: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RESULT_AGGREGATOR_INTERNAL_API_KEY": API_KEY,
        "RESULT_AGGREGATOR_HTTP_PORT": str(port),
        "RESULT_AGGREGATOR_HTTP_WORKERS": str(workers),
        "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
    }
    if server == "hypercorn":  # the alternative measured against the deployed server (uvicorn)
        factory = "result_aggregator_service.entrypoints.api:app_from_env()"
        options = ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        return subprocess.Popen([sys.executable, "-m", "hypercorn", factory, *options], env=env)
    return subprocess.Popen([sys.executable, "-m", "result_aggregator_service.entrypoints.api"], env=env)


async def _wait_healthy(client: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API exited with {process.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the API did not become healthy within 60 s")


async def _lookups(client: httpx.AsyncClient, result: str) -> float:
    lines = (await client.get("/metrics")).text.splitlines()
    wanted = [line for line in lines if line.startswith("ras_cache_lookups_total{") and f'result="{result}"' in line]
    return sum(float(line.rsplit(" ", 1)[1]) for line in wanted)


async def _pass(client: aiohttp.ClientSession, batch_ids: list[str], concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of one GET per id, `concurrency` at a time, and the wall-clock time of the pass."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for batch_id in batch_ids:
        queue.put_nowait(batch_id)
    latencies: list[float] = []

    async def caller() -> None:
        while not queue.empty():
            batch_id = queue.get_nowait()
            started = time.perf_counter()
            response = await client.get(f"/internal/v1/batches/{batch_id}/status", headers=AUTH)
            body = await response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                raise SystemExit(f"{batch_id}: {response.status} {body!r}")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "req_per_s": len(latencies) / wall,
    }


async def _measure(args: argparse.Namespace, settings: Settings, batch_ids: list[str], url: str) -> None:
    results: dict[str, list[dict[str, float]]] = {"uncached": [], "cached": []}
    async with (
        aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=args.concurrency)) as client,
        httpx.AsyncClient(base_url=url) as probe,
        Redis.from_url(settings.redis_url) as redis,
    ):
        ids = batch_ids[: args.requests]
        await _pass(client, ids[:200], args.concurrency)  # warm up connections and pools
        for run in range(1, args.runs + 1):
            await redis.delete(*(batch_key(b) for b in ids))
            for mode, result in (("uncached", "miss"), ("cached", "hit")):
                before = await _lookups(probe, result)
                summary = _summary(*await _pass(client, ids, args.concurrency))
                counted = await _lookups(probe, result) - before
                if args.workers == 1 and counted != len(ids):  # each worker process counts its own
                    raise SystemExit(f"run {run} {mode}: {counted:.0f} of {len(ids)} requests were a {result}")
                results[mode].append(summary)
                print(f"run {run} {mode:>8}: " + "  ".join(f"{k} {v:8.2f}" for k, v in summary.items()))
    medians = {mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for mode, runs in results.items()}
    print(
        f"\nmedian of {args.runs} runs, {len(ids)} requests, concurrency {args.concurrency}, {args.workers} worker(s)"
    )
    for mode, summary in medians.items():
        print(f"{mode:>8}: " + "  ".join(f"{k} {v:8.2f}" for k, v in summary.items()))
    print(
        "cached/uncached: "
        + "  ".join(f"{k} {medians['cached'][k] / medians['uncached'][k]:.2f}" for k in medians["cached"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (counters need 1)")
    parser.add_argument("--server", choices=("uvicorn", "hypercorn"), default="uvicorn")
    args = parser.parse_args()

    env = ensure_stack()
    settings = Settings(
        database_url=env["DATABASE_URL"],
        redis_url=env["REDIS_URL"],
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
    )
    upgrade_to_head(settings.database_url)
    print(f"seeding {args.requests} batches of 5 essays through process_batch ...")
    batch_ids = asyncio.run(_seed(settings, args.requests))

    port = _free_port()
    process = _start_api(settings, port, args.workers, args.server)
    try:

        async def run() -> None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                await _wait_healthy(probe, process)
            await _measure(args, settings, batch_ids, f"http://127.0.0.1:{port}")

        asyncio.run(run())
    finally:
        process.terminate()
        process.wait(timeout=15)


if __name__ == "__main__":
    main()
