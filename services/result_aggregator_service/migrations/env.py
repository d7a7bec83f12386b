"""Alembic environment: runs migrations over the service's async engine."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from result_aggregator_service.adapters.tables import metadata
from result_aggregator_service.config import Settings


def _run(connection: Connection) -> None:
    # A rebuild's shadow: the whole shape (and its own alembic_version) in that schema, nothing outside it.
    schema = context.config.attributes.get("schema")
    if schema:
        connection.exec_driver_sql(f'SET search_path TO "{schema}"')
    context.configure(
        connection=connection, target_metadata=metadata, compare_type=True, version_table_schema=schema or None
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = context.config.attributes.get("database_url") or Settings().database_url
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_run_online())
