"""Drain rate over the same pre-published events: the worker against the bare client, a plain consumer and
one transaction per event, all measured in the same invocation.

Each run publishes `--events` events (whole batch lifecycles) once, then drains them with, in turn:
- bare client: aiokafka `getmany()` + `json.loads` (the ceiling of reading alone);
- plain consumer: aiokafka + asyncpg as a team would write one instead (claims with one unnest insert,
  each batch's and essay's facts merged into JSONB rows with one unnest upsert each, commit, commit offsets);
- worker: the service's worker process (its default micro-batch cap) into a fresh database;
- worker, publishing off: the same worker writing nothing to the outbox (RESULT_AGGREGATOR_PUBLISH_ENABLED=false);
- per-event worker: the same worker folding one event per transaction (timed on a fifth of the events);
- two workers: two worker processes in one consumer group (with `--two-workers`).
A worker's drain is timed from its partitions' assignment to its last commit, both as the worker's
/metrics state them (`ras_last_assignment_timestamp_seconds`, `ras_last_commit_timestamp_seconds`).
With `--scale N` the worker also drains N/10 and then N events, `--scale-runs` times (the median time
ratio, and its RSS).

    .venv/bin/python bench/ingest_rate.py [--events 20000] [--runs 3] [--two-workers] [--no-per-event]
    .venv/bin/python bench/ingest_rate.py --runs 0 --scale 100000 [--scale-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import statistics
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from sqlalchemy import make_url

from bench import harness
from bench.bench_support import cpu_seconds
from bench.plain_consumer import plain_consumer_rate
from local_stack import ensure_stack
from result_aggregator_service.adapters.schema import upgrade_to_head

_redis_databases = itertools.cycle(range(1, 16))


async def bare_client_rate(bootstrap_servers: str, starts: harness.Offsets, count: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        seen, started = 0, 0.0
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=500)).values():
                started = started or time.perf_counter()
                seen += sum(1 for record in records if json.loads(record.value))
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Drain:
    """One drain of the worker:
    - `rate`: events/s from its partitions' assignment to its last commit, the whole drain. Its start-up
      (the first fetches, a cold connection pool) counts, as it does for a worker started on a backlog.
      The baselines' clocks start a little later, when their first `getmany` returns records.
    - `steady_rate`: events/s from its first commit to its last (nan if it committed only once). The
      start-up does not count, but neither does the next micro-batch fetched and decoded ahead of that
      first commit: up to a fifth of a 10,000-event drain's decoding, a fiftieth of a 100,000-event one's.
    - `rss_mb`: its RSS at the end. `cpu_us_per_event`: its CPU time per event from the poll that saw
      the assignment on, steadier than events/s on a busy machine."""

    rate: float
    steady_rate: float
    rss_mb: float
    cpu_us_per_event: float


async def worker_rate(
    env: dict[str, str],
    starts: harness.Offsets,
    count: int,
    batch: int | None = None,
    workers: int = 1,
    publish: bool = True,
) -> Drain:
    redis_url = env["REDIS_URL"].rsplit("/", 1)[0] + f"/{next(_redis_databases)}"  # no hints of earlier runs
    async with Redis.from_url(redis_url) as redis:
        await redis.flushdb()
    async with harness.fresh_database(env["DATABASE_URL"]) as database_url:
        group = await harness.group_at(env["KAFKA_BOOTSTRAP_SERVERS"], starts)
        ports = [harness.free_port() for _ in range(workers)]
        processes = [
            harness.spawn(
                "result_aggregator_service.entrypoints.worker",
                {
                    **env,
                    "DATABASE_URL": database_url,
                    "REDIS_URL": redis_url,
                    "RESULT_AGGREGATOR_CONSUMER_GROUP": group,
                    **({"RESULT_AGGREGATOR_MICRO_BATCH_MAX_EVENTS": str(batch)} if batch else {}),
                    "RESULT_AGGREGATOR_WORKER_METRICS_PORT": str(port),
                    "RESULT_AGGREGATOR_LOG_LEVEL": "WARNING",
                    "RESULT_AGGREGATOR_PUBLISH_ENABLED": str(publish).lower(),
                },
                f"worker-{batch or 'default'}-{n}.log",
            )
            for n, port in enumerate(ports)
        ]
        try:
            polls: list[harness.Progress] = []

            async def total() -> harness.Progress:
                """All the workers: events committed, their last commit, their earliest assignment. A second
                worker's joining reassigns the first one later and moves its gauge on: the drain's start is
                the assignment the first poll to see one saw."""
                states = [await harness.progress(port) for port in ports]
                polls.append(
                    harness.Progress(
                        sum(max(state.processed, 0.0) for state in states),
                        max(state.last_commit for state in states),
                        min((state.assigned for state in states if state.assigned), default=0.0),
                    )
                )
                return polls[-1]

            async def assigned() -> bool:
                return (await total()).assigned > 0

            # polled often until then (nothing is drained yet), so the CPU time is read close to it
            await harness.until(assigned, time.monotonic() + 120, "the partitions' assignment", every=0.02)
            assigned_at, cpu = polls[-1].assigned, sum(cpu_seconds(process.pid) for process in processes)

            async def done() -> bool:
                return (await total()).processed >= count

            await harness.until(done, time.monotonic() + 900, f"{count} events")
            cpu = sum(cpu_seconds(process.pid) for process in processes) - cpu
            first, last = next(poll for poll in polls if poll.processed), polls[-1]
            steady_seconds = last.last_commit - first.last_commit
            return Drain(
                rate=last.processed / (last.last_commit - assigned_at),
                steady_rate=(last.processed - first.processed) / steady_seconds if steady_seconds else math.nan,
                rss_mb=harness.rss_megabytes(processes[0]),
                cpu_us_per_event=cpu / last.processed * 1e6,
            )
        finally:
            for process in processes:
                harness.stop(process)


async def one_run(env: dict[str, str], count: int, two_workers: bool, per_event: bool) -> dict[str, float]:
    servers = env["KAFKA_BOOTSTRAP_SERVERS"]
    starts = await harness.end_offsets(servers)
    await harness.publish(servers, harness.lifecycle_events(count))
    rates: dict[str, float] = {
        "bare client": await bare_client_rate(servers, starts, count),
        "plain consumer": await plain_consumer_rate(servers, _asyncpg_dsn(env["DATABASE_URL"]), starts, count),
    }
    worker = await worker_rate(env, starts, count)
    rates["worker"], rates["worker CPU µs per event"] = worker.rate, worker.cpu_us_per_event
    rates["worker, publishing off"] = (await worker_rate(env, starts, count, publish=False)).rate
    if per_event:
        rates["worker, one event per transaction"] = (await worker_rate(env, starts, count // 5, 1)).rate
    if two_workers:
        rates["two workers, one group"] = (await worker_rate(env, starts, count, workers=2)).rate
    return rates


def _asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def scale_run(env: dict[str, str], count: int, runs: int) -> None:
    """The worker on count/10 and on count events, `runs` times (a drain of count/10 lasts a second or two,
    so one pair alone says little on a busy machine): the median time ratio, and the RSS at the end.
    The steady state's ratio is printed too: it leaves out each drain's first micro-batch and what was
    fetched and decoded ahead of its commit, up to a fifth of the short drain's decoding but a fiftieth of
    the long one's (see `Drain`). So is the ratio of CPU time per event, long drain to short."""
    small = count // 10
    servers = env["KAFKA_BOOTSTRAP_SERVERS"]
    ratios, steady_ratios, cpu_ratios = [], [], []
    for run in range(runs):
        drains = {}
        for events in (small, count):
            starts = await harness.end_offsets(servers)
            await harness.publish(servers, harness.lifecycle_events(events))
            drains[events] = drain = await worker_rate(env, starts, events)
            print(
                f"scale run {run + 1}, worker, {events:,} events: {events / drain.rate:.2f} s ({drain.rate:,.0f}"
                f" events/s; steady state {drain.steady_rate:,.0f}), RSS at the end {drain.rss_mb:.0f} MB,"
                f" CPU {drain.cpu_us_per_event:.0f} µs per event"
            )
        ratios.append(drains[small].rate / drains[count].rate * count / small)
        steady_ratios.append(drains[small].steady_rate / drains[count].steady_rate * count / small)
        cpu_ratios.append(drains[count].cpu_us_per_event / drains[small].cpu_us_per_event)
        print(
            f"scale run {run + 1}: time for {count:,} / time for {small:,}: {ratios[-1]:.1f}x"
            f" (steady state {steady_ratios[-1]:.1f}x; CPU per event {cpu_ratios[-1]:.2f}x)"
        )
    runs_text = ", ".join(f"{ratio:.1f}" for ratio in ratios)
    print(
        f"time for {count:,} / time for {small:,}, median of {runs}: {statistics.median(ratios):.1f}x"
        f" (runs: {runs_text}; target <= 11x); steady state {statistics.median(steady_ratios):.1f}x;"
        f" CPU per event {statistics.median(cpu_ratios):.2f}x"
    )


def _summarise(runs: list[dict[str, float]], events: int) -> None:
    medians: dict[str, float] = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    print(f"\nmedians of {len(runs)} runs over the same {events:,} events each:")
    for name, rate in medians.items():
        print(f"  {name:36s} {rate:>9,.0f} {'' if 'CPU' in name else 'events/s'}")
    worker = medians["worker"]
    print(f"worker / plain consumer:                 {worker / medians['plain consumer']:.2f}x (target >= 0.5x)")
    print(f"worker / bare client:                    {worker / medians['bare client']:.3f}x")
    print(f"worker / worker with publishing off:     {worker / medians['worker, publishing off']:.2f}x")
    if per_event := medians.get("worker, one event per transaction"):
        print(f"worker / one event per transaction:      {worker / per_event:.1f}x (target >= 20x)")
    if "two workers, one group" in medians:
        print(f"two workers / one worker:                {medians['two workers, one group'] / worker:.2f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3, help="0 with --scale: only the scale run")
    parser.add_argument("--two-workers", action="store_true")
    parser.add_argument("--scale", type=int, default=0, help="also time the worker on this many events")
    parser.add_argument("--scale-runs", type=int, default=3, help="how many times the scale pair runs")
    parser.add_argument("--no-per-event", action="store_true", help="skip the one-event-per-transaction worker")
    args = parser.parse_args()
    if args.scale_runs < 1:
        parser.error("--scale-runs must be at least 1")
    env = ensure_stack()
    await asyncio.to_thread(upgrade_to_head, env["DATABASE_URL"])
    runs: list[dict[str, float]] = []
    for run in range(args.runs):
        runs.append(await one_run(env, args.events, args.two_workers, not args.no_per_event))
        print(f"run {run + 1}: " + "; ".join(f"{name} {rate:,.0f}" for name, rate in runs[-1].items()))
    if runs:
        _summarise(runs, args.events)
    if args.scale:
        await scale_run(env, args.scale, args.scale_runs)


if __name__ == "__main__":
    asyncio.run(main())
