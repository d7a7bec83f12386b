"""`ras rebuild` on a live system: under load, with a corrupted live model, killed halfway and started
again. Afterwards every batch answers what an undisturbed fold of the topics answers, no event is lost,
no reader sees an error or a batch go back in time, and no ETag from before the swap gets a 304."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text

from conftest import migrate
from result_aggregator_service.adapters.tables import EPOCH_VERSION_BASE
from result_aggregator_service.entrypoints.rebuild import SHADOW_WORKER
from tests.conftest import LOG_DIR, wait_for
from tests.faults.bench import FaultBench
from tests.faults.claims import engine_for

pytestmark = pytest.mark.infra
REBUILD_SECONDS = 420  # the whole topics' history of the test stack, folded by one shadow worker
LOAD_RATE = 60  # events/s: well below the shadow's rate on a busy 2-core machine, so it catches up
UNTIL_TOLD = 1_000_000  # a load's bound in events; end_load_soon ends it


def start_rebuild(bench: FaultBench, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": bench.database_url,
        "REDIS_URL": bench.settings.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": bench.settings.kafka_bootstrap_servers,
        "RESULT_AGGREGATOR_RETRY_MAX_SECONDS": "1",
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "result_aggregator_service.cli", "rebuild", "--grace", "0", "--json"]
    argv += ["--log-dir", str(LOG_DIR / f"rebuild-{name}")]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=(LOG_DIR / f"rebuild-{name}.log").open("wb"))


async def finished(rebuild: subprocess.Popen[bytes]) -> dict[str, object]:
    try:
        out, _ = await asyncio.to_thread(rebuild.communicate, timeout=REBUILD_SECONDS)
    finally:
        if rebuild.poll() is None:  # timed out (or the test was cancelled): its shadow workers die with it
            rebuild.kill()
            rebuild.wait()
    assert rebuild.returncode == 0, f"ras rebuild exited {rebuild.returncode}: {out!r}"
    figures: dict[str, object] = json.loads(out)
    return figures


async def fresh_bench(bench: FaultBench, fresh_databases: Callable[[], Awaitable[str]]) -> None:
    """The live system on a database of its own: the swap replaces that database's read model only;"""
    database_url = await fresh_databases()
    await migrate(database_url, "upgrade", "head")
    # and a Redis database of its own: the swap's flush drops every cached answer of its database
    bench.settings = bench.settings.model_copy(update={"redis_url": _redis_db(bench.settings.redis_url, 5)})
    await bench.start(workers=1, database_url=database_url)


def _redis_db(url: str, number: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


async def scalar(database_url: str, query: str, **parameters: object) -> object:
    engine = engine_for(database_url)
    try:
        async with engine.begin() as connection:
            return (await connection.execute(text(query), parameters)).scalar()
    finally:
        await engine.dispose()


async def all_claimed(bench: FaultBench) -> None:
    """Every published event has its claim in the read model as it is now (not only when first seen)."""
    ids = [p.event_id for p in bench.load.published]
    query = "SELECT count(*) FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
    assert await scalar(bench.database_url, query, ids=ids) == len(ids), "an event is missing after the swap"


async def applied(bench: FaultBench, batch_ids: list[str]) -> None:
    """Every event published so far for `batch_ids` has its claim."""
    events = {p.event_id for p in bench.load.published if p.batch_id in batch_ids}

    async def done() -> bool:
        return events <= bench.tracker.claimed_at.keys()

    await wait_for(done, within=60, what=f"the events of {len(batch_ids)} batches applied")


def end_load_soon(bench: FaultBench, events: int = 300) -> None:
    """A few more events after the swap, then the load ends (it runs until told: the rebuild's length
    depends on the topics' history)."""
    bench.load.max_events = len(bench.load.published) + events


async def test_rebuild_under_load_of_a_corrupted_model_serves_the_fold_and_loses_nothing(
    bench: FaultBench, fresh_databases: Callable[[], Awaitable[str]]
) -> None:
    await fresh_bench(bench, fresh_databases)
    load = bench.run_load(UNTIL_TOLD, rate=LOAD_RATE)
    await bench.until_published(600)  # lifecycles go out one batch after another: the first ones are whole
    deleted, altered = bench.load.batch_ids[:2], bench.load.batch_ids[2:4]  # older than the reader's sample
    await applied(bench, deleted + altered)
    etags = {b: (await bench.client.get(f"/internal/v1/batches/{b}/status")).headers["ETag"] for b in altered}
    engine = engine_for(bench.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM batches WHERE batch_id = ANY(:ids)"), {"ids": deleted})
            await connection.execute(
                text("UPDATE batches SET client_status = 'failed', essay_count = 99 WHERE batch_id = ANY(:ids)"),
                {"ids": altered},
            )
            await connection.execute(
                text("UPDATE essays SET cj_rank = 42 WHERE batch_id = ANY(:ids)"), {"ids": altered}
            )
    finally:
        await engine.dispose()

    figures = await finished(start_rebuild(bench, "under-load"))
    assert not load.done(), "the load ended before the swap"
    end_load_soon(bench)
    assert figures["epoch"] == 1 and figures["swap_attempts"] == 1

    verified = await bench.verify("rebuild under load", load)
    verified.assert_clean()
    assert verified.read_errors == 0
    await all_claimed(bench)
    for batch_id, etag in etags.items():  # a pre-swap ETag never matches: the version carries the epoch
        answer = await bench.client.get(f"/internal/v1/batches/{batch_id}/status", headers={"If-None-Match": etag})
        assert answer.status_code == 200 and answer.headers["ETag"] != etag
    version_floor = "SELECT min(version) FROM batches WHERE batch_id = ANY(:ids)"
    floor = await scalar(bench.database_url, version_floor, ids=bench.load.batch_ids)
    assert isinstance(floor, int) and floor > EPOCH_VERSION_BASE
    leftovers = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rm\\_%'"
    assert await scalar(bench.database_url, leftovers) == 0  # shadow remains and the retired model dropped


def shadow_workers_of(parent: int) -> list[int]:
    """Processes running the shadow-worker launcher for the rebuild `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:4] == [b"-c", SHADOW_WORKER.encode(), str(parent).encode()]:
            found.append(int(entry.name))
    return found


async def test_a_rebuild_killed_halfway_leaves_the_live_model_serving_and_runs_again(
    bench: FaultBench, fresh_databases: Callable[[], Awaitable[str]]
) -> None:
    await fresh_bench(bench, fresh_databases)
    load = bench.run_load(UNTIL_TOLD, rate=LOAD_RATE)
    await bench.until_published(200)

    killed = start_rebuild(bench, "killed")
    shadow = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rm\\_shadow\\_%'"

    async def folding() -> bool:
        assert killed.poll() is None, "the rebuild ended before it could be killed"
        name = await scalar(bench.database_url, shadow)
        migrated = name and await scalar(bench.database_url, f"SELECT to_regclass('\"{name}\".processed_events')")
        return bool(migrated and await scalar(bench.database_url, f'SELECT count(*) FROM "{name}".processed_events'))

    await wait_for(folding, within=REBUILD_SECONDS, what="the shadow folding events")
    assert shadow_workers_of(killed.pid)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    async def workers_gone() -> bool:
        return not shadow_workers_of(killed.pid)

    await wait_for(workers_gone, within=60, what="the shadow workers to die with the rebuild")
    assert await scalar(bench.database_url, "SELECT epoch FROM read_model") == 0
    await bench.progress_after(bench.cleared("the rebuild killed"), "the rebuild killed")  # live goes on

    figures = await finished(start_rebuild(bench, "again"))
    assert not load.done(), "the load ended before the swap"
    end_load_soon(bench)
    assert figures["epoch"] == 1
    verified = await bench.verify("rebuild killed halfway, then again", load)
    verified.assert_clean()
    assert verified.read_errors == 0
    await all_claimed(bench)
