"""The rebuild's swap: how long live writes wait, against comparing the two read models in full (what
they waited for before the comparison moved ahead of the write lock), on synthetic models of `--batches`
batches (three essays each, two shadow outbox rows per batch), in the same run.

- equal: the live model holds what the shadow holds (a rebuild of a caught-up model: nothing to carry);
- live empty: the live model holds nothing (every shadow outbox row is carried over, under the lock).

    .venv/bin/python bench/swap_pause.py [--batches 80000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import harness
from local_stack import ensure_stack
from result_aggregator_service.adapters import read_model_swap as swap
from result_aggregator_service.adapters.schema import upgrade_to_head

_BATCHES = (
    "INSERT INTO \"{schema}\".batches (batch_id, facts, version) SELECT 'b' || g,"
    " jsonb_build_object('f', repeat(md5(g::text), 20), 'g', g), 1 FROM generate_series(1, {n}) g"
)
_ESSAYS = (
    "INSERT INTO \"{schema}\".essays (batch_id, essay_id, facts) SELECT 'b' || g, 'e' || k,"
    " jsonb_build_object('f', repeat(md5((g * k)::text), 8)) FROM generate_series(1, {n}) g, generate_series(1, 3) k"
)
_OUTBOX = (
    "INSERT INTO \"{schema}\".outbox (event_id, topic, key, value) SELECT gen_random_uuid(), 't',"
    " convert_to('b' || g, 'UTF8'), convert_to(jsonb_build_object('data', jsonb_build_object('batch_id',"
    " 'b' || g, 'pad', repeat('x', 800)))::text, 'UTF8') FROM generate_series(1, {n}) g, generate_series(1, 2) k"
)


async def _models(engine: AsyncEngine, url: str, batches: int, live_too: bool) -> str:
    shadow = await swap.create_shadow(engine, url, 1)
    async with engine.begin() as connection:
        for schema in (shadow, "public") if live_too else (shadow,):
            await connection.execute(text(_BATCHES.format(schema=schema, n=batches)))
            await connection.execute(text(_ESSAYS.format(schema=schema, n=batches)))
        await connection.execute(text(_OUTBOX.format(schema=shadow, n=batches)))
    async with engine.connect() as connection:
        await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(
            text("VACUUM ANALYZE")
        )  # nothing left for autovacuum to lock
    return shadow


async def _full_comparison(engine: AsyncEngine, shadow: str) -> float:
    async with engine.connect() as connection, connection.begin() as transaction:
        started = time.perf_counter()
        for statement in swap._compare_ahead("public", shadow):
            await connection.execute(statement)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    return elapsed


async def one_case(database_url: str, batches: int, live_too: bool) -> tuple[float, float]:
    async with harness.fresh_database(database_url) as url:
        engine = create_async_engine(url)
        try:
            shadow = await _models(engine, url, batches, live_too)
            compared = await _full_comparison(engine, shadow)

            async def caught_up() -> None:
                return None

            _, timings = await swap.swap_in(engine, shadow, 1, 60, caught_up)
            return compared, timings.writes_paused_seconds
        finally:
            await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=80_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = ensure_stack()
    await asyncio.to_thread(upgrade_to_head, env["DATABASE_URL"])
    for name, live_too in (("equal", True), ("live empty", False)):
        runs = [await one_case(env["DATABASE_URL"], args.batches, live_too) for _ in range(args.runs)]
        compared = statistics.median(c for c, _ in runs)
        paused = statistics.median(p for _, p in runs)
        print(
            f"{name:10s} {args.batches:,} batches: full comparison {compared * 1000:,.0f} ms,"
            f" live writes paused {paused * 1000:,.0f} ms ({paused / compared:.2f}x; runs:"
            f" {', '.join(f'{p * 1000:,.0f}' for _, p in runs)} ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
