"""Servers, seed data, cache preparation and the py-spy profile of bench/api_latency.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx

from result_aggregator_service.config import Settings
from result_aggregator_service.lifecycles import batch_lifecycle
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import process_batch
from result_aggregator_service.service_layer.ports import BatchChange, ChangeSink, SeenEventHints, UnitOfWork
from result_aggregator_service.tests.fakes import record_of

BENCH = Path(__file__).resolve().parent
TARGETS = ("bare", "bare_redis_get", "cached_status", "uncached_status", "cached_list", "healthz")
STATUS_ROUTE = "/internal/v1/batches/<batch_id>/status"
LIST_ROUTE = "/internal/v1/batches/user/<user_id>"
USER_ID = "bench-user"
LIST_PATH = f"/internal/v1/batches/user/{USER_ID}?limit=20&offset=0"


@dataclass
class Servers:
    API_KEY: ClassVar[str] = "bench-internal-api-key"
    api_url: str
    bare_url: str
    api_pid: int
    bare_pid: int
    batch_ids: list[str]
    sink: ChangeSink
    client: httpx.AsyncClient

    def status_paths(self) -> list[str]:
        return [f"/internal/v1/batches/{batch_id}/status" for batch_id in self.batch_ids]


async def seed(settings: Settings, count: int) -> list[str]:
    rng = random.Random()
    lifecycles = [batch_lifecycle(rng, USER_ID, essay_count=5) for _ in range(count)]
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(settings: Settings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RESULT_AGGREGATOR_INTERNAL_API_KEY": Servers.API_KEY,
        "RESULT_AGGREGATOR_HTTP_PORT": str(port),
        "RESULT_AGGREGATOR_HTTP_WORKERS": "1",
        "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
    }


async def _wait_until_up(client: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not answer 200 within 60 s")


@contextlib.asynccontextmanager
async def start_servers(settings: Settings, batch_ids: list[str]) -> AsyncIterator[Servers]:
    api_port, bare_port = _free_port(), _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    container = make_container(settings)
    try:
        api_env = _environment(settings, api_port)
        api_module = ["-m", "result_aggregator_service.entrypoints.api"]
        processes.append(_spawn([sys.executable, *api_module], api_env))
        async with httpx.AsyncClient(headers={"X-Internal-API-Key": Servers.API_KEY}) as client:
            client.headers["X-Service-ID"] = "api-gateway-service"
            servers = Servers(
                f"http://127.0.0.1:{api_port}",
                f"http://127.0.0.1:{bare_port}",
                processes[0].pid,
                0,
                batch_ids,
                await container.get(ChangeSink),
                client,
            )
            await _wait_until_up(client, f"{servers.api_url}/healthz", processes[0])
            body = (await client.get(servers.api_url + servers.status_paths()[0])).content
            bare_env = {**_environment(settings, bare_port), "BARE_BODY_BYTES": str(len(body))}
            processes.append(_spawn([sys.executable, str(BENCH / "bare_api.py")], bare_env))
            servers.bare_pid = processes[1].pid
            await _wait_until_up(client, f"{servers.bare_url}/bare", processes[1])
            print(f"status body {len(body)} bytes; bare body the same size", flush=True)
            yield servers
    finally:
        await asyncio.to_thread(_stop, processes)
        await container.close()


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=15)


async def _lookups(servers: Servers, route: str, result: str) -> float:
    wanted = f'ras_cache_lookups_total{{result="{result}",route="{route}"}}'
    lines = (await servers.client.get(f"{servers.api_url}/metrics")).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(wanted))


Prepared = tuple[str, int, list[str], Callable[[], Awaitable[None]]]


@contextlib.asynccontextmanager
async def warm_and_hold(servers: Servers, target: str) -> AsyncIterator[Prepared]:
    """The URL, server pid and paths wrk drives for `target`, with a check (run after wrk) that every
    request was a cache hit (resp. miss)."""
    if target in ("bare", "bare_redis_get"):
        yield servers.bare_url, servers.bare_pid, ["/bare" if target == "bare" else "/bare-redis"], _nothing
        return
    if target == "healthz":
        yield servers.api_url, servers.api_pid, ["/healthz"], _nothing
        return
    route, paths = (LIST_ROUTE, [LIST_PATH]) if target == "cached_list" else (STATUS_ROUTE, servers.status_paths())
    unwanted = "hit" if target == "uncached_status" else "miss"
    changes = [BatchChange(batch_id, 0) for batch_id in servers.batch_ids]
    if target == "uncached_status":
        await servers.sink.batches_changing(changes)
    else:
        for path in paths:
            (await servers.client.get(servers.api_url + path)).raise_for_status()
    before = await _lookups(servers, route, unwanted)

    async def check() -> None:
        if (counted := await _lookups(servers, route, unwanted) - before) != 0:
            raise SystemExit(f"{target}: {counted:.0f} requests were a cache {unwanted}")

    try:
        yield servers.api_url, servers.api_pid, paths, check
    finally:
        if target == "uncached_status":
            await servers.sink.batches_changed(changes)


async def _nothing() -> None:
    return None


async def profile_top(servers: Servers, target: str, drive: Callable[[str, list[str]], object]) -> None:
    """Sample the API process with py-spy while `drive` loads `target`; print the top functions."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as folder:
        stacks = Path(folder) / "stacks.txt"
        async with warm_and_hold(servers, target) as (url, _, paths, _):
            record = [py_spy, "record", "--pid", str(servers.api_pid), "--rate", "250", "--format", "raw"]
            spy = _spawn([*record, "--output", str(stacks), "--duration", "8"], dict(os.environ))
            await asyncio.sleep(1)
            await asyncio.to_thread(drive, url, paths)
            await asyncio.to_thread(spy.wait, 60)
        own, cumulative, total = _tally(stacks.read_text())
    print(f"\npy-spy: {target} at 4 connections, {total} samples of the API's busy thread")
    for title, tally in (("own", own), ("cumulative", cumulative)):
        print(f"  top by {title} samples:")
        for frame, count in tally.most_common(25):
            print(f"    {100 * count / total:5.1f}%  {frame}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tally(raw: str) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in filter(None, raw.splitlines()):
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
    return own, cumulative, total
