"""Helpers of the API tests: auth headers, driving the real write side, counting SQL statements."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

from dishka import AsyncContainer
from quart.typing import TestClientProtocol
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import create_app
from result_aggregator_service.service_layer.ingest import IngestReport, process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, SeenEventHints, UnitOfWork
from result_aggregator_service.tests.fakes import record_of

API_KEY = "test-internal-api-key"
AUTH = {"X-Internal-API-Key": API_KEY, "X-Service-ID": "bff-teacher-service"}
BATCH_STATUS = "/internal/v1/batches/{}/status"
USER_BATCHES = "/internal/v1/batches/user/{}"
Client: TypeAlias = TestClientProtocol  # not named Test*: pytest would try to collect it


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Client]:
    """An app with its own container (for settings the shared app does not have)."""
    app = create_app(settings)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def ingest(container: AsyncContainer, events: Sequence[dict[str, Any]]) -> IngestReport:
    """Drive the real write side: one micro-batch through `process_batch`, invalidating the caches."""
    async with container() as request:
        return await process_batch(
            [record_of(e) for e in events],
            await request.get(UnitOfWork),
            await request.get(SeenEventHints),
            await request.get(ChangeSink),
        )


class StatementLog:
    """Every SQL statement any engine of this process sends while attached (the API's read model has an
    engine of its own): proves what did and did not hit PostgreSQL. `engine` says which database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine: type[Engine] = Engine
        self.url = engine.url
        self.statements: list[str] = []

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn.engine.url == self.url:
            self.statements.append(statement)

    def reading(self, table: str) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s]


def unused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
