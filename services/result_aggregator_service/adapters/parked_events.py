"""Parked events: bad input kept with its raw bytes until an operator replays or discards it."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from result_aggregator_service.adapters.tables import parked_events, processed_events
from result_aggregator_service.service_layer.ports import ParkReason, RawRecord


@dataclass(frozen=True)
class ParkedFilter:
    """Which parked events an operator means: a state, and optionally a topic, a reason, a time window."""

    state: str = "parked"
    topic: str | None = None
    reason: str | None = None
    since: datetime | None = None  # parked at or after
    until: datetime | None = None  # parked before

    def conditions(self) -> list[ColumnElement[bool]]:
        c = parked_events.c
        wanted = [c.state == self.state]
        wanted += [c.topic == self.topic] if self.topic is not None else []
        wanted += [c.reason == self.reason] if self.reason is not None else []
        wanted += [c.parked_at >= self.since] if self.since is not None else []
        wanted += [c.parked_at < self.until] if self.until is not None else []
        return wanted


@dataclass(frozen=True)
class ParkedCount:
    topic: str
    reason: str
    count: int
    oldest: datetime
    newest: datetime


@dataclass(frozen=True)
class ParkedEvent:
    id: int
    record: RawRecord
    reason: str
    error: str
    event_id: UUID | None
    state: str
    parked_at: datetime


class SqlAlchemyParkedEventStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def park(self, record: RawRecord, reason: ParkReason, error: str, event_id: UUID | None = None) -> None:
        await self._session.execute(
            insert(parked_events)
            .values(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                value=record.value,
                headers=_headers_to_json(record.headers),
                reason=reason.value,
                error=storable_text(error),
                event_id=event_id,
            )
            .on_conflict_do_nothing()  # the same record (topic, partition, offset, bytes) parked before
        )

    async def list(self, which: ParkedFilter = ParkedFilter(), limit: int = 100, after: int = 0) -> list[ParkedEvent]:
        """Oldest first; `after` pages on: pass the last id of the previous page."""
        rows = await self._session.execute(
            select(parked_events)
            .where(*which.conditions(), parked_events.c.id > after)
            .order_by(parked_events.c.id)
            .limit(limit)
        )
        return [_parked(row._mapping) for row in rows]

    async def counts(self, which: ParkedFilter = ParkedFilter()) -> Sequence[ParkedCount]:
        """How many match, by topic and reason, with the oldest and newest parking time."""
        c = parked_events.c
        rows = await self._session.execute(
            select(c.topic, c.reason, func.count(), func.min(c.parked_at), func.max(c.parked_at))
            .where(*which.conditions())
            .group_by(c.topic, c.reason)
            .order_by(c.topic, c.reason)
        )
        return [ParkedCount(*row) for row in rows]

    async def get(self, parked_id: int) -> ParkedEvent | None:
        row = (await self._session.execute(select(parked_events).where(parked_events.c.id == parked_id))).first()
        return _parked(row._mapping) if row else None

    async def resolve(self, parked_id: int, state: str) -> bool:
        """Mark a parked event `replayed` or `discarded`; False if it was not parked."""
        result = await self._session.execute(
            update(parked_events)
            .where(parked_events.c.id == parked_id, parked_events.c.state == "parked")
            .values(state=state, resolved_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release_claim(self, event_id: UUID) -> None:
        """Forget that this event was applied, so a replay in the same transaction can claim it again."""
        await self._session.execute(delete(processed_events).where(processed_events.c.event_id == event_id))


def storable_text(text: str) -> str:
    """Text PostgreSQL accepts: no NUL character, no lone surrogate (each is written as an escape)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _headers_to_json(headers: Sequence[tuple[str, bytes]]) -> list[dict[str, str]]:
    """Keys and values base64-encoded: a header key may hold any character, NUL included, which JSONB
    cannot store; a key that is not valid UTF-8 arrives with surrogate escapes, kept as its bytes."""
    return [
        {"key_b64": _b64(key.encode("utf-8", "surrogateescape")), "value_b64": _b64(value)} for key, value in headers
    ]


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode()


def _parked(row: Any) -> ParkedEvent:
    headers = tuple(
        (base64.b64decode(h["key_b64"]).decode("utf-8", "surrogateescape"), base64.b64decode(h["value_b64"]))
        for h in row["headers"]
    )
    record = RawRecord(row["topic"], row["partition"], row["offset"], row["key"], row["value"], headers)
    return ParkedEvent(row["id"], record, row["reason"], row["error"], row["event_id"], row["state"], row["parked_at"])
