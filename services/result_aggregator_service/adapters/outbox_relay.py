"""The outbox relay's two adapters: its PostgreSQL session (lead, listen, read, mark) and its Kafka producer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import make_url

from result_aggregator_service.adapters.tables import OUTBOX_CHANNEL
from result_aggregator_service.config import Settings
from result_aggregator_service.service_layer.ports import Delivery, OutboxRow

# the advisory lock whose holder is the one relay that publishes (per database): "rasrelay" in ASCII
OUTBOX_RELAY_LOCK = 0x7261737265_6C6179
APPLICATION_NAME = "ras-outbox-relay"  # how the relay's session shows in pg_stat_activity

_UNPUBLISHED = (
    "SELECT id, event_id, topic, key, value, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1"
)
_MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
_BACKLOG = (
    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8"
    " FROM outbox WHERE published_at IS NULL"
)


class PostgresOutbox:
    """The relay's own session: one connection that holds the advisory lock, LISTENs for new rows, reads
    and marks them. The lock lives and dies with the connection: a relay whose session ends (a crash, a
    database restart) stops leading at once, and a standby's next try takes over."""

    def __init__(self, connection: asyncpg.Connection, wake: Callable[[], None]) -> None:
        self._connection, self._wake = connection, wake

    @classmethod
    async def connect(cls, settings: Settings, wake: Callable[[], None]) -> PostgresOutbox:
        """A new session; `wake` is called on every notice of new rows and when the session is lost."""

        def milliseconds(seconds: float) -> str:
            return str(int(seconds * 1000))

        dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(
            dsn,
            timeout=5,
            command_timeout=settings.database_command_timeout_seconds,
            server_settings={
                "application_name": APPLICATION_NAME,
                "statement_timeout": milliseconds(settings.database_statement_timeout_seconds),
                "lock_timeout": milliseconds(settings.database_lock_timeout_seconds),
            },
        )
        connection.add_termination_listener(lambda _: wake())
        return cls(connection, wake)

    async def try_lead(self) -> bool:
        """Take the relay's lock if no other session holds it (never waits)."""
        return bool(await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", OUTBOX_RELAY_LOCK))

    async def listen(self) -> None:
        await self._connection.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake())

    async def unpublished(self, limit: int) -> list[OutboxRow]:
        rows = await self._connection.fetch(_UNPUBLISHED, limit)
        return [
            OutboxRow(
                row["id"],
                row["event_id"],
                row["topic"],
                row["key"],
                row["value"],
                tuple((name, value.encode()) for name, value in json.loads(row["headers"])),
            )
            for row in rows
        ]

    async def mark_published(self, ids: Sequence[int]) -> None:
        await self._connection.execute(_MARK, list(ids))

    async def backlog(self) -> tuple[int, float]:
        """Unpublished rows, and the age in seconds of the oldest (0 when none)."""
        row = await self._connection.fetchrow(_BACKLOG)
        assert row is not None
        return int(row[0]), float(row[1])

    def close(self) -> None:
        """Drop the connection at once (also from a cancelled task): the server releases the lock."""
        self._connection.terminate()


class KafkaEventPublisher:
    """An idempotent producer (acks=all): the broker drops a retried duplicate of a batch and keeps each
    partition in send order, and aiokafka keeps at most one produce request in flight per broker."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=APPLICATION_NAME,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self, timeout_seconds: float) -> None:
        """Stop, flushing what is pending for at most `timeout_seconds` (a lost broker must not hang us):
        whatever did not go out is still unmarked in the outbox."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._producer.stop(), timeout_seconds)

    async def publish(self, rows: Sequence[OutboxRow]) -> Delivery:
        sent: list[asyncio.Future[Any]] = []
        refused: Exception | None = None
        for row in rows:  # in id order: per partition the broker keeps this order
            try:
                sent.append(await self._producer.send(row.topic, row.value, key=row.key, headers=list(row.headers)))
            except Exception as error:  # no metadata in time, producer closing: the rest waits for a retry
                refused = error
                break
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        for delivered, outcome in enumerate(outcomes):
            if isinstance(outcome, Exception):
                return Delivery(delivered, outcome)
            if isinstance(outcome, BaseException):  # cancelled: shutting down
                raise outcome
        return Delivery(len(outcomes), refused)
