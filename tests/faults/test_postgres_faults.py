"""PostgreSQL slow, holding a lock longer than the database's timeout, or a connection black-holed mid-
transaction, all under a steady load: the worker pauses and retries; nothing is lost, doubled or parked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import migrate
from result_aggregator_service.config import Settings
from result_aggregator_service.tests.contract import sample_envelopes as samples
from tests.conftest import _through, wait_for
from tests.faults.bench import FaultBench
from tests.faults.claims import engine_for
from tests.faults.profile import Profile
from tests.faults.verifier import Figures
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.infra
PROXY_DELAY_SECONDS = 0.05  # per forwarded chunk, each way: a round trip costs 100 ms more
DATABASE_TIMEOUT_SECONDS = 1.0
LOCK_HOLD_SECONDS = 5.0
LOCKED_BATCHES = 5
BLACK_HOLE_BOUND_SECONDS = 20.0  # a worker whose connection went silent applies again within this


@pytest.fixture
def database_proxy(settings: Settings) -> Iterator[TcpProxy]:
    parts = urlsplit(settings.database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()
    yield proxy
    proxy.close_black_holed()
    proxy.cut()


async def test_a_slow_database_under_load_loses_nothing(
    bench: FaultBench, profile: Profile, report: Callable[[Figures], Figures], database_proxy: TcpProxy
) -> None:
    await bench.start(
        worker_database_url=_through(database_proxy, bench.settings.database_url),
        worker_settings={"RESULT_AGGREGATOR_DATABASE_COMMAND_TIMEOUT_SECONDS": "5"},  # the client gives up
    )
    load = bench.run_load()
    await bench.until_published(profile.events // 4)
    database_proxy.delay_seconds = PROXY_DELAY_SECONDS
    await asyncio.sleep(profile.fault_seconds)
    bench.workers[0].assert_alive()
    database_proxy.delay_seconds = 0.0
    bench.cleared(f"database {PROXY_DELAY_SECONDS * 2000:.0f} ms slower per round trip for {profile.fault_seconds}s")
    figures = report(await bench.verify("slow PostgreSQL under load", load))
    figures.assert_clean()


@pytest.mark.parametrize("database_timeout", ["lock_timeout", "statement_timeout"])
async def test_a_row_locked_longer_than_the_database_timeout_pauses_and_parks_nothing(
    database_timeout: str,
    bench: FaultBench,
    profile: Profile,
    report: Callable[[Figures], Figures],
    fresh_databases: Callable[[], Awaitable[str]],
) -> None:
    """The worker's connections carry the timeout (its settings); another connection holds some batch rows
    longer than that while events for them arrive."""
    database = await fresh_databases()
    await migrate(database, "upgrade", "head")
    admin = engine_for(database)
    setting = f"RESULT_AGGREGATOR_DATABASE_{database_timeout.upper()}_SECONDS"
    await bench.start(database_url=database, worker_settings={setting: str(DATABASE_TIMEOUT_SECONDS)})
    load = bench.run_load()
    await bench.progress_after(bench.cleared("worker started"), "the worker's start")
    locked = bench.load.batch_ids[:LOCKED_BATCHES]
    await wait_for(lambda: _registered(admin, locked), within=profile.recovery_bound_seconds, what="the batches")
    try:
        async with admin.connect() as connection:
            for unlimited in ("lock_timeout", "statement_timeout"):
                await connection.execute(text(f"SET {unlimited} = 0"))
            rows = await connection.execute(
                text("SELECT batch_id FROM batches WHERE batch_id = ANY(:ids) FOR UPDATE"), {"ids": locked}
            )
            assert len(rows.all()) == LOCKED_BATCHES, "the batches to lock are not registered yet"
            touching = [samples.slot_assigned(b, f"{b}-e0", file_name="while-locked.docx") for b in locked]
            await bench.load.publish_extra(touching)
            await asyncio.sleep(LOCK_HOLD_SECONDS)
            bench.workers[0].assert_alive()
            await connection.rollback()
        bench.cleared(
            f"a {LOCK_HOLD_SECONDS:.0f}s row lock (over a {DATABASE_TIMEOUT_SECONDS:.0f}s {database_timeout}) released"
        )
        figures = report(await bench.verify(f"row lock longer than {database_timeout}", load))
    finally:
        await admin.dispose()
    figures.assert_clean()


async def _registered(engine: AsyncEngine, batch_ids: list[str]) -> bool:
    async with engine.connect() as connection:
        query = text("SELECT count(*) FROM batches WHERE batch_id = ANY(:ids) AND is_registered")
        return int((await connection.execute(query, {"ids": batch_ids})).scalar_one()) == len(batch_ids)


async def test_a_connection_black_holed_mid_transaction_is_given_up_and_retried(
    bench: FaultBench, profile: Profile, report: Callable[[Figures], Figures], database_proxy: TcpProxy
) -> None:
    await bench.start(
        worker_database_url=_through(database_proxy, bench.settings.database_url),
        worker_settings={"RESULT_AGGREGATOR_DATABASE_COMMAND_TIMEOUT_SECONDS": "5"},  # the client gives up
    )
    load = bench.run_load()
    await bench.progress_after(bench.cleared("worker started"), "the worker's start")
    await bench.until_published(profile.events // 3)
    assert database_proxy.black_hole() > 0, "the worker had no open database connection"
    holed = bench.cleared("open database connections black-holed")
    await asyncio.sleep(BLACK_HOLE_BOUND_SECONDS)
    recovered = bench.tracker.first_claim_after(holed)
    database_proxy.close_black_holed()  # what the kernel would do after its TCP timeouts (~15 min)
    bench.cleared("black-holed connections reset")
    figures = report(await bench.verify("database connection black-holed mid-transaction", load))
    figures.assert_clean()
    assert recovered is not None, f"nothing applied within {BLACK_HOLE_BOUND_SECONDS:.0f}s of the black hole"
