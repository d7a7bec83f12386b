"""The Alembic migrations on a fresh PostgreSQL database: up, all the way down, up again, equal to the metadata."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import migrate
from result_aggregator_service.adapters.tables import metadata

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
