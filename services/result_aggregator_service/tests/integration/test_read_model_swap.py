"""The rebuild's database side on a real PostgreSQL: the shadow has the live shape (the migrations made
both), the swap exchanges the two in one transaction, and a swap that fails changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from conftest import migrate
from result_aggregator_service.adapters import read_model_swap as swap
from result_aggregator_service.adapters.tables import EPOCH_VERSION_BASE

_COLUMNS = text(
    "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') FROM"
    " information_schema.columns WHERE table_schema = :s AND table_name IN ('batches', 'essays', 'processed_events')"
    " ORDER BY 1, ordinal_position"
)
_INDEXES = text(
    "SELECT tablename, replace(indexdef, :s || '.', '') FROM pg_indexes WHERE schemaname = :s ORDER BY 1, 2"
)


@pytest.fixture
async def engine(fresh_database_url: str) -> AsyncIterator[AsyncEngine]:
    await migrate(fresh_database_url, "upgrade", "head")
    engine = create_async_engine(fresh_database_url)
    yield engine
    await engine.dispose()


async def shape(engine: AsyncEngine, schema: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    async with engine.connect() as connection:
        columns = [tuple(row) for row in await connection.execute(_COLUMNS, {"s": schema})]
        indexes = [tuple(row) for row in await connection.execute(_INDEXES, {"s": schema})]
    return columns, indexes


async def test_the_shadow_has_the_live_shape_and_versions_from_its_epoch(
    engine: AsyncEngine, fresh_database_url: str
) -> None:
    shadow = await swap.create_shadow(engine, fresh_database_url, 3)
    (live_columns, live_indexes), (columns, indexes) = await shape(engine, "public"), await shape(engine, shadow)
    version_default = ("batches", "version", "bigint", "NO", f"'{3 * EPOCH_VERSION_BASE}'::bigint")
    assert columns == [version_default if c[:2] == ("batches", "version") else c for c in live_columns]
    assert indexes == live_indexes  # every table of the shape, parked_events and outbox too (its own copies)


async def test_a_swap_exchanges_the_read_models_and_a_failed_one_changes_nothing(
    engine: AsyncEngine, fresh_database_url: str
) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO batches (batch_id) VALUES ('live')"))
    shadow = await swap.create_shadow(engine, fresh_database_url, 1)
    async with engine.begin() as connection:
        await connection.execute(text(f"INSERT INTO \"{shadow}\".batches (batch_id) VALUES ('rebuilt')"))

    async def gives_up() -> None:
        raise TimeoutError("the shadow did not catch up")

    with pytest.raises(TimeoutError):
        await swap.swap_in(engine, shadow, 1, 60, gives_up)
    assert await swap.live_epoch(engine) == 0
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT batch_id FROM batches"))).scalars().all() == ["live"]

    async def caught_up() -> None:
        return None

    retired, timings = await swap.swap_in(engine, shadow, 1, 60, caught_up)
    assert await swap.live_epoch(engine) == 1 and timings.reads_paused_seconds <= timings.writes_paused_seconds
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT batch_id, version FROM batches"))).all()
        assert [tuple(r) for r in rows] == [("rebuilt", EPOCH_VERSION_BASE)]
        old = await connection.execute(text(f'SELECT batch_id FROM "{retired}".batches'))
        assert old.scalars().all() == ["live"]
    await swap.drop_retired(engine, retired)
    assert await swap.drop_leftovers(engine) == [shadow]  # the rest of the shadow: its parked and outbox copies


async def test_a_swap_carries_over_the_announcements_of_batches_the_rebuild_changed_and_no_others(
    engine: AsyncEngine, fresh_database_url: str
) -> None:
    shadow = await swap.create_shadow(engine, fresh_database_url, 1)

    announced, stale_more, same, new = (f"00000000-0000-0000-0000-00000000000{n}" for n in range(1, 5))
    async with engine.begin() as connection:
        await connection.execute(text(_batches("public", {"same": "x", "stale": "a"})))
        await connection.execute(text(_announcement("public", announced, "stale")))
        await connection.execute(text(_batches(shadow, {"same": "x", "stale": "b", "new": "c"})))
        for event_id, batch_id in ((announced, "stale"), (stale_more, "stale"), (same, "same"), (new, "new")):
            await connection.execute(text(_announcement(shadow, event_id, batch_id)))

    async def caught_up() -> None:
        return None

    await swap.swap_in(engine, shadow, 1, 60, caught_up)
    # the batch the live model already announced keeps its row once; history that did not change (`same`)
    # is not announced again; what only the rebuilt state makes due is
    assert await _live_outbox(engine) == [announced, stale_more, new]


async def test_batches_that_change_after_the_comparison_ahead_of_the_lock_are_compared_again(
    engine: AsyncEngine, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap compares the two models before it stops live writes. What changes after that comparison
    (a live commit before the lock, the shadow's last micro-batches under it) is compared again, and the
    outbox rows the shadow added since are read then."""
    shadow = await swap.create_shadow(engine, fresh_database_url, 1)
    ids = (f"00000000-0000-0000-0000-00000000001{n}" for n in range(7))
    stale, later, fixed, essay_later, same, live_later, fresh = ids
    async with engine.begin() as connection:
        for schema, differing in (("public", "a"), (shadow, "b")):
            await connection.execute(text(_batches(schema, {"stale": differing, "fixed": differing})))
            await connection.execute(text(_batches(schema, {"later": "x", "essay": "x", "same": "x", "live": "x"})))
            await connection.execute(
                text(f"INSERT INTO \"{schema}\".essays (batch_id, essay_id) VALUES ('essay', 'e1')")
            )
        for event_id, batch_id in ((stale, "stale"), (fixed, "fixed"), (same, "same"), (live_later, "live")):
            await connection.execute(text(_announcement(shadow, event_id, batch_id)))

    compare_ahead = swap._compare_ahead

    def then_a_live_commit(live: str, shadow: str) -> list[TextClause]:  # as a live worker's, before the lock
        return [*compare_ahead(live, shadow), text(_changed(live, "live", "z"))]

    monkeypatch.setattr(swap, "_compare_ahead", then_a_live_commit)

    async def caught_up() -> None:  # the shadow's last micro-batches, after the comparison ahead
        async with engine.begin() as connection:
            for batch_id, facts in (("later", "y"), ("fixed", "a")):
                await connection.execute(text(_changed(shadow, batch_id, facts)))
            await connection.execute(
                text(f"UPDATE \"{shadow}\".essays SET facts = '{{\"g\": 1}}' WHERE batch_id = 'essay'")
            )
            await connection.execute(
                text(f"UPDATE \"{shadow}\".batches SET version = version + 1 WHERE batch_id = 'essay'")
            )
            await connection.execute(text(_batches(shadow, {"fresh": "n"})))
            for event_id, batch_id in ((later, "later"), (essay_later, "essay"), (fresh, "fresh")):
                await connection.execute(text(_announcement(shadow, event_id, batch_id)))

    await swap.swap_in(engine, shadow, 1, 60, caught_up)
    # `stale` as compared ahead; `live`, `later`, `essay` and `fresh` (new to the shadow) changed after it;
    # `fixed` came to match the live model after it; `same` never differed
    assert await _live_outbox(engine) == [stale, live_later, later, essay_later, fresh]


async def test_a_shadow_micro_batch_still_committing_when_the_swap_goes_on_is_carried_over(
    engine: AsyncEngine, fresh_database_url: str
) -> None:
    """A shadow worker stopped under the lock may be committing its last micro-batch: the swap waits for
    that commit before it reads the shadow, so the announcements it made due are carried over."""
    shadow = await swap.create_shadow(engine, fresh_database_url, 1)
    late = "00000000-0000-0000-0000-000000000021"
    async with engine.begin() as connection:
        for schema in ("public", shadow):
            await connection.execute(text(_batches(schema, {"late": "x"})))
    committed: list[asyncio.Task[None]] = []

    async def caught_up() -> None:
        begun = asyncio.Event()

        async def last_micro_batch() -> None:
            async with engine.begin() as connection:
                await connection.execute(text(_changed(shadow, "late", "y")))
                await connection.execute(text(_announcement(shadow, late, "late")))
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                begun.set()
                await _until_blocking(engine, pid)  # commits only once the swap waits for it

        committed.append(asyncio.create_task(last_micro_batch()))
        await begun.wait()

    await swap.swap_in(engine, shadow, 1, 60, caught_up)
    await committed[0]
    assert await _live_outbox(engine) == [late]


def _changed(schema: str, batch_id: str, facts: str) -> str:
    """A batch's facts changed as a worker changes them: with its version."""
    facts_json = f'{{"f": "{facts}"}}'
    return (
        f"UPDATE \"{schema}\".batches SET facts = '{facts_json}', version = version + 1 WHERE batch_id = '{batch_id}'"
    )


def _batches(schema: str, facts: dict[str, str]) -> str:
    return f'INSERT INTO "{schema}".batches (batch_id, facts) VALUES ' + ", ".join(
        f"('{batch_id}', '{{\"f\": \"{value}\"}}')" for batch_id, value in facts.items()
    )


def _announcement(schema: str, event_id: str, batch_id: str) -> str:
    value = f'{{"event_id": "{event_id}", "data": {{"batch_id": "{batch_id}"}}}}'
    return (
        f'INSERT INTO "{schema}".outbox (event_id, topic, key, value) VALUES'
        f" ('{event_id}', 't', '{batch_id}', convert_to('{value}', 'UTF8'))"
    )


async def _until_blocking(engine: AsyncEngine, pid: int) -> None:
    """Until another session waits for a lock that backend `pid` holds (at most 10 s)."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    async with engine.connect() as connection:
        for _ in range(500):
            if (await connection.execute(waiting, {"pid": pid})).scalar_one():
                return
            await asyncio.sleep(0.02)
    raise AssertionError("nothing waited for the shadow's transaction")


async def _live_outbox(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT event_id::text FROM outbox ORDER BY id"))).scalars())
