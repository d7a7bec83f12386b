"""Which published events a read model has claimed (`processed_events`), and when: polled from the
database as a black box, so the figures (time to the first commit after a fault, time to catch up) come
from the outside."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from tests.faults.load import Published

POLL_SECONDS = 0.25
CHUNK = 5_000
_CLAIMED = text("SELECT event_id::text FROM processed_events WHERE event_id = ANY(CAST(:ids AS uuid[]))")


def engine_for(database_url: str) -> AsyncEngine:
    """A pool-less engine: it survives a database restart without handing out dead connections."""
    return create_async_engine(database_url, poolclass=NullPool)


class ClaimTracker:
    def __init__(self, database_url: str, published: list[Published]) -> None:
        self._published = published  # the load driver's list, read as it grows
        self._read = 0
        self._engine = engine_for(database_url)
        self._waiting: dict[str, float] = {}  # event id -> when it was published
        self.published_at: dict[str, float] = {}
        self.claimed_at: dict[str, float] = {}  # when a poll first saw its claim
        self._committed_after: dict[str, float] = {}  # the start of the last poll that did not see it
        self._last_poll = 0.0
        self.poll_failures = 0
        self._task: asyncio.Task[None] | None = None

    def expect(self, published: Iterable[tuple[str, float]]) -> None:
        for event_id, at in published:
            self.published_at.setdefault(event_id, at)
            if event_id not in self.claimed_at:
                self._waiting[event_id] = at

    def start(self) -> ClaimTracker:
        self._task = asyncio.create_task(self._poll_forever())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._engine.dispose()

    @property
    def missing(self) -> list[str]:
        return list(self._waiting)

    async def wait_all(self, within: float) -> bool:
        """True once every published event is claimed; False after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            if not self._waiting and self._read == len(self._published):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)

    def first_claim_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first claim committed after it (one a poll that began after
        `moment` still did not see), as the next poll saw it."""
        later = [self.claimed_at[e] for e, after in self._committed_after.items() if after >= moment]
        return min(later) - moment if later else None

    def caught_up_after(self, moment: float) -> float | None:
        """Seconds from `moment` until every event published before it was claimed (0 if none was pending)."""
        before = [event_id for event_id, at in self.published_at.items() if at <= moment]
        if any(event_id not in self.claimed_at for event_id in before):
            return None
        return max([self.claimed_at[event_id] - moment for event_id in before] + [0.0])

    def claimed_between(self, start: float, end: float) -> int:
        return sum(start < at <= end for at in self.claimed_at.values())

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self._poll()
            except Exception:  # the database may be down: that is the fault under test
                self.poll_failures += 1
            await asyncio.sleep(POLL_SECONDS)

    async def _poll(self) -> None:
        fresh, self._read = self._published[self._read :], len(self._published)
        self.expect((p.event_id, p.at) for p in fresh)
        waiting, poll_started, previous_poll = list(self._waiting), time.monotonic(), self._last_poll
        for start in range(0, len(waiting), CHUNK):
            async with self._engine.connect() as connection:
                rows = await connection.execute(_CLAIMED, {"ids": waiting[start : start + CHUNK]})
                found = [row[0] for row in rows]
            now = time.monotonic()
            for event_id in found:
                self._waiting.pop(event_id, None)
                self.claimed_at[event_id] = now
                self._committed_after[event_id] = max(previous_poll, self.published_at[event_id])
        self._last_poll = poll_started
