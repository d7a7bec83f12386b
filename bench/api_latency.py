"""The API's hot path against a bare Quart route served the same way, driven by `wrk` (a C load generator).

Both servers run as one uvicorn process each with the API's own server options (`server_options`); the
bare one answers a constant JSON body of the cached status body's size (bench/bare_api.py). For each of
`--runs` rounds, at each `--connections` count, wrk (`--threads` threads, `--seconds` s) drives:
  - bare: the bare route;
  - bare_redis_get: the bare app's second route, the same body after one Redis GET (the floor of a
    cache hit that asks Redis: what the API adds on top of it is its own cost);
  - cached_status: GET /internal/v1/batches/{id}/status over the seeded batches, all cache hits;
  - uncached_status: the same, while a hold (what the worker sets during a commit) keeps every key out
    of the cache: each request misses, queries PostgreSQL and offers its fill;
  - cached_list: the first page (limit 20) of the seeding user's batches, a cache hit;
  - healthz: /healthz (PostgreSQL, Redis and Kafka checked per request).
The API's cache counters confirm the hits and misses. Figures: req/s, p50, p99 (wrk's, per run), the
median over the runs, the ratio of req/s to the bare route's at the same connection count, and the
server process's CPU time per request (user + system, from /proc): on a shared machine the load of
other processes moves req/s and p99 a lot, the CPU cost of a request much less.
`--profile TARGET` samples the API process with py-spy during one more run of TARGET and prints the
functions with the most samples (own and cumulative).

    .venv/bin/python bench/api_latency.py [--seconds 5] [--runs 3] [--connections 4 32] [--batches 200]
                                          [--profile cached_status]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_support import TARGETS, Servers, cpu_seconds, profile_top, seed, start_servers, warm_and_hold
from local_stack import ensure_stack
from result_aggregator_service.adapters.schema import upgrade_to_head
from result_aggregator_service.config import Settings

BENCH = Path(__file__).resolve().parent
Figures = dict[str, float]


def ensure_wrk() -> str:
    """wrk from Debian's package, installed when missing."""
    if shutil.which("wrk") is None:
        print("installing wrk (apt-get) ...")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "wrk"]
        subprocess.run(apt if os.geteuid() == 0 else ["sudo", *apt], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed and could not be installed")
    return found


def run_wrk(wrk: str, url: str, paths: list[str], connections: int, threads: int, seconds: int) -> Figures:
    with tempfile.NamedTemporaryFile("w", suffix=".paths") as listing:
        listing.write("\n".join(paths) + "\n")
        listing.flush()
        env = {**os.environ, "WRK_PATHS": listing.name, "WRK_API_KEY": Servers.API_KEY}
        command = [wrk, f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s"]
        done = subprocess.run(
            [*command, "-s", str(BENCH / "wrk_paths.lua"), url], env=env, capture_output=True, text=True, check=True
        )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["non_2xx_3xx"] or figures["socket_errors"]:
        raise SystemExit(f"{url}{paths[0]}: {figures}")
    return {
        "requests": figures["requests"],
        "req_per_s": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
    }


async def measure(args: argparse.Namespace, servers: Servers, wrk: str) -> dict[tuple[int, str], list[Figures]]:
    results: dict[tuple[int, str], list[Figures]] = {}
    for run in range(1, args.runs + 1):
        for connections in args.connections:
            for target in args.targets:
                async with warm_and_hold(servers, target) as (url, pid, paths, check):
                    cpu_before = cpu_seconds(pid)
                    figures = await asyncio.to_thread(run_wrk, wrk, url, paths, connections, args.threads, args.seconds)
                    figures["cpu_us"] = (cpu_seconds(pid) - cpu_before) * 1e6 / figures["requests"]
                    await check()
                results.setdefault((connections, target), []).append(figures)
                print(f"run {run} c={connections:<3} {target:<16}" + _row(figures), flush=True)
    return results


def _row(figures: Figures) -> str:
    return (
        f"{figures['req_per_s']:10.0f} req/s  p50 {figures['p50_ms']:7.2f} ms  p99 {figures['p99_ms']:7.2f} ms"
        f"  server CPU {figures['cpu_us']:6.0f} us/req"
    )


def report(args: argparse.Namespace, results: dict[tuple[int, str], list[Figures]]) -> None:
    print(f"\nmedian of {args.runs} runs of {args.seconds} s, wrk -t{args.threads}, one uvicorn process each")
    print(f"{'conns':>5}  {'target':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'x bare':>9}{'CPU us/req':>12}")
    for connections in args.connections:
        bare = statistics.median(f["req_per_s"] for f in results[(connections, "bare")])
        for target in args.targets:
            runs = results[(connections, target)]
            median = {key: statistics.median(f[key] for f in runs) for key in runs[0]}
            print(
                f"{connections:>5}  {target:<16}{median['req_per_s']:>10.0f}{median['p50_ms']:>10.2f}"
                f"{median['p99_ms']:>10.2f}{median['req_per_s'] / bare:>9.2f}{median['cpu_us']:>12.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS), help="bare is always run")
    parser.add_argument("--profile", choices=TARGETS, help="sample the API with py-spy during one more run")
    args = parser.parse_args()
    args.targets = ["bare", *(t for t in TARGETS if t in args.targets and t != "bare")]

    wrk = ensure_wrk()
    env = ensure_stack()
    settings = Settings(
        database_url=env["DATABASE_URL"],
        redis_url=env["REDIS_URL"],
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
    )
    upgrade_to_head(settings.database_url)
    print(f"seeding {args.batches} batches of 5 essays through process_batch ...", flush=True)
    batch_ids = asyncio.run(seed(settings, args.batches))

    async def run() -> None:
        async with start_servers(settings, batch_ids) as servers:
            results = await measure(args, servers, wrk)
            report(args, results)
            if args.profile:
                await profile_top(
                    servers,
                    args.profile,
                    lambda url, paths: run_wrk(wrk, url, paths, 4, args.threads, max(args.seconds, 10)),
                )

    started = time.monotonic()
    asyncio.run(run())
    print(f"\n({time.monotonic() - started:.0f} s; python {sys.version.split()[0]}; httpx {httpx.__version__})")


if __name__ == "__main__":
    main()
