"""`ras rebuild`'s rate and switch-over pause, against bare baselines over the same records in the same run.

Publishes `--events` events (whole lifecycles) once, then per run, over the topics' whole history (a
test stack's history holds records a bare aiokafka client cannot even read, so the baseline is the
worker, which parks them):
- worker: one plain worker process (a new group at the beginning) into a fresh database, timed over the
  first `--sample` records (its rate is steady; the whole history would double the run);
- rebuild: `ras rebuild --json --grace 0` on another fresh database (its shadow worker, micro-batches of
  2,000), with the rate from its first commit to caught up, and the swap's pauses.

    .venv/bin/python bench/rebuild_rate.py [--events 20000] [--runs 3] [--sample 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys

from aiokafka import AIOKafkaConsumer

from bench import harness
from bench.ingest_rate import worker_rate
from local_stack import ensure_stack


async def beginnings_and_total(bootstrap_servers: str) -> tuple[harness.Offsets, int]:
    ends = await harness.end_offsets(bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        starts = dict(await consumer.beginning_offsets(list(ends)))
    finally:
        await consumer.stop()
    return starts, sum(ends[tp] - starts[tp] for tp in ends)


async def rebuild_figures(env: dict[str, str]) -> dict[str, float]:
    async with harness.fresh_database(env["DATABASE_URL"]) as database_url:
        argv = [sys.executable, "-m", "result_aggregator_service.cli", "rebuild", "--grace", "0", "--json"]
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            env={**os.environ, **env, "DATABASE_URL": database_url},
            capture_output=True,
            check=True,
            timeout=3600,
        )
        figures: dict[str, float] = json.loads(done.stdout)
        return figures


async def one_run(env: dict[str, str], sample: int) -> dict[str, float]:
    servers = env["KAFKA_BOOTSTRAP_SERVERS"]
    starts, total = await beginnings_and_total(servers)
    if not total:
        raise SystemExit("the topics hold no records to rebuild from: publish some with --events N")
    rebuilt = await rebuild_figures(env)
    return {
        "records": total,
        "worker": (await worker_rate(env, starts, min(total, sample))).rate,
        "rebuild": rebuilt["events_per_second"],
        "writes paused (ms)": rebuilt["writes_paused_ms"],
        "reads paused (ms)": rebuilt["reads_paused_ms"],
        "rebuild, whole (s)": rebuilt["build_seconds"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20_000)
    options = parser.parse_args()
    env = ensure_stack()
    # the swap's flush drops every cached answer of its Redis database: not the one the service uses
    env["REDIS_URL"] = env["REDIS_URL"].rsplit("/", 1)[0] + "/6"
    await harness.publish(env["KAFKA_BOOTSTRAP_SERVERS"], harness.lifecycle_events(options.events))
    runs = [await one_run(env, options.sample) for _ in range(options.runs)]
    for run in runs:
        print(json.dumps({k: round(v, 1) for k, v in run.items()}))
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"medians of {options.runs} runs over {median['records']:.0f} records:")
    for key in ("worker", "rebuild"):
        print(f"  {key:12} {median[key]:>10,.0f} events/s   rebuild ÷ it {median['rebuild'] / median[key]:.2f}x")
    print(f"  one million events: {1e6 / median['rebuild'] / 60:.1f} min of folding at the rebuild's median rate")
    print(
        f"  swap: live writes paused {median['writes paused (ms)']:.0f} ms, reads {median['reads paused (ms)']:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
