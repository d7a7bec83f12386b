"""The Alembic migrations on a fresh PostgreSQL database: up, all the way down, up again, equal to the metadata."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import TypeAdapter
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from conftest import migrate
from result_aggregator_service.adapters.tables import batches, metadata
from result_aggregator_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from result_aggregator_service.domain.model import BatchResult
from result_aggregator_service.tests.scenarios import lifecycle
from result_aggregator_service.tests.unit.folding import decoded, fold

SERVICE_TABLES = set(metadata.tables)


async def inspect_schema(url: str) -> tuple[set[str], list[Any]]:
    """The tables of the database and its differences from the SQLAlchemy metadata."""

    def read(connection: Connection) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return set(inspect(connection).get_table_names()), compare_metadata(context, metadata)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


def added_tables(differences: list[Any]) -> set[str]:
    return {difference[1].name for difference in differences if difference[0] == "add_table"}


async def test_migrations_upgrade_downgrade_and_upgrade_again_to_the_metadata(fresh_database_url: str) -> None:
    url, migrated = fresh_database_url, SERVICE_TABLES | {"alembic_version"}
    tables, differences = await inspect_schema(url)
    assert tables == set() and added_tables(differences) == SERVICE_TABLES  # the comparison sees every table

    await migrate(url, "upgrade", "head")
    assert await inspect_schema(url) == (migrated, [])

    await migrate(url, "downgrade", "base")
    tables, differences = await inspect_schema(url)
    assert tables == {"alembic_version"} and added_tables(differences) == SERVICE_TABLES

    await migrate(url, "upgrade", "head")
    assert await inspect_schema(url) == (migrated, [])


async def test_moving_essay_facts_into_essay_rows_keeps_every_batch_and_goes_back(fresh_database_url: str) -> None:
    url, batch_id = fresh_database_url, "batch-before-0004"
    events = lifecycle(batch_id, ["e1", "e2"])
    folded = fold([decoded(event) for event in events], batch_id)
    old_facts = TypeAdapter(BatchResult).dump_python(folded, mode="json")  # 0003 kept the essays inside
    await migrate(url, "upgrade", "0003")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(batches).values(batch_id=batch_id, is_registered=True, facts=old_facts))
            for essay_id in folded.essays:
                await connection.execute(text("INSERT INTO essays (batch_id, essay_id) VALUES (:b, :e)"),
                                         {"b": batch_id, "e": essay_id})  # fmt: skip

        await migrate(url, "upgrade", "head")
        async with AsyncSession(engine) as session, SqlAlchemyUnitOfWork(session) as uow:
            assert await uow.batches.get(batch_id) == folded

        await migrate(url, "downgrade", "0003")
        async with engine.connect() as connection:
            query = select(batches.c.facts).where(batches.c.batch_id == batch_id)
            assert (await connection.execute(query)).scalar_one() == old_facts
    finally:
        await engine.dispose()
