"""The rebuild's database side on a real PostgreSQL: the shadow has the live shape (the migrations made
both), the swap exchanges the two in one transaction, and a swap that fails changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
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

    def rows(schema: str, facts: dict[str, str]) -> str:
        return f'INSERT INTO "{schema}".batches (batch_id, facts) VALUES ' + ", ".join(
            f"('{batch_id}', '{{\"f\": \"{value}\"}}')" for batch_id, value in facts.items()
        )

    def announcement(schema: str, event_id: str, batch_id: str) -> str:
        value = f'{{"event_id": "{event_id}", "data": {{"batch_id": "{batch_id}"}}}}'
        return (
            f'INSERT INTO "{schema}".outbox (event_id, topic, key, value) VALUES'
            f" ('{event_id}', 't', '{batch_id}', convert_to('{value}', 'UTF8'))"
        )

    announced, stale_more, same, new = (f"00000000-0000-0000-0000-00000000000{n}" for n in range(1, 5))
    async with engine.begin() as connection:
        await connection.execute(text(rows("public", {"same": "x", "stale": "a"})))
        await connection.execute(text(announcement("public", announced, "stale")))
        await connection.execute(text(rows(shadow, {"same": "x", "stale": "b", "new": "c"})))
        for event_id, batch_id in ((announced, "stale"), (stale_more, "stale"), (same, "same"), (new, "new")):
            await connection.execute(text(announcement(shadow, event_id, batch_id)))

    async def caught_up() -> None:
        return None

    await swap.swap_in(engine, shadow, 1, 60, caught_up)
    async with engine.connect() as connection:
        live = (await connection.execute(text("SELECT event_id::text FROM outbox ORDER BY id"))).scalars().all()
    # the batch the live model already announced keeps its row once; history that did not change (`same`)
    # is not announced again; what only the rebuilt state makes due is
    assert live == [announced, stale_more, new]


async def test_batches_that_change_after_the_comparison_ahead_of_the_lock_are_compared_again(
    engine: AsyncEngine, fresh_database_url: str
) -> None:
    """The swap compares the two models before it stops live writes; what the shadow applies while
    catching up under the lock (versions move) is compared again, and its new outbox rows are read then."""
    shadow = await swap.create_shadow(engine, fresh_database_url, 1)
    stale, later, fixed, essay_later, same = (f"00000000-0000-0000-0000-00000000001{n}" for n in range(5))

    def announcement(event_id: str, batch_id: str) -> str:
        value = f'{{"event_id": "{event_id}", "data": {{"batch_id": "{batch_id}"}}}}'
        return (
            f'INSERT INTO "{shadow}".outbox (event_id, topic, key, value) VALUES'
            f" ('{event_id}', 't', '{batch_id}', convert_to('{value}', 'UTF8'))"
        )

    def batches(schema: str, facts: dict[str, str]) -> str:
        return f'INSERT INTO "{schema}".batches (batch_id, facts) VALUES ' + ", ".join(
            f"('{batch_id}', '{{\"f\": \"{value}\"}}')" for batch_id, value in facts.items()
        )

    async with engine.begin() as connection:
        for schema, fixed_facts in (("public", "a"), (shadow, "b")):
            await connection.execute(text(batches(schema, {"stale": fixed_facts, "later": "x", "fixed": fixed_facts})))
            await connection.execute(text(batches(schema, {"essay": "x", "same": "x"})))
            await connection.execute(
                text(f"INSERT INTO \"{schema}\".essays (batch_id, essay_id) VALUES ('essay', 'e1')")
            )
        for event_id, batch_id in ((stale, "stale"), (fixed, "fixed"), (same, "same")):
            await connection.execute(text(announcement(event_id, batch_id)))

    async def caught_up() -> None:  # the shadow's last micro-batches, after the comparison ahead
        async with engine.begin() as connection:
            bump = "version = version + 1"
            await connection.execute(
                text(f'UPDATE "{shadow}".batches SET facts = \'{{"f": "y"}}\', {bump} WHERE batch_id = \'later\'')
            )
            await connection.execute(
                text(f'UPDATE "{shadow}".batches SET facts = \'{{"f": "a"}}\', {bump} WHERE batch_id = \'fixed\'')
            )
            await connection.execute(
                text(f"UPDATE \"{shadow}\".essays SET facts = '{{\"g\": 1}}' WHERE batch_id = 'essay'")
            )
            await connection.execute(text(f"UPDATE \"{shadow}\".batches SET {bump} WHERE batch_id = 'essay'"))
            await connection.execute(text(announcement(later, "later")))
            await connection.execute(text(announcement(essay_later, "essay")))

    await swap.swap_in(engine, shadow, 1, 60, caught_up)
    async with engine.connect() as connection:
        live = (await connection.execute(text("SELECT event_id::text FROM outbox ORDER BY id"))).scalars().all()
    # `stale` as compared ahead; `later` and `essay` changed after it; `fixed` came to match the live
    # model after it; `same` never differed
    assert live == [stale, later, essay_later]
