"""Read-your-writes and the live feeds' events: the read service, driven by the process's change notices.

- `wait_for_event`: one look at the worker's records (processed/parked events), then the notices; a
  notice is published after the commit and the cache invalidation, so the read that follows a settled
  wait includes the event. After a RESYNC (the subscription reconnected) it looks again, once.
- `BatchSnapshots`: what a feed sends for a batch (version, client status, the status body). Streams
  told of the same committed version share one read and one encoding.
- `StreamSlots`: the per-process cap on open streams.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote
from uuid import UUID

from result_aggregator_service.live_changes import (
    RESYNC,
    BatchChanged,
    ChangeFeed,
    EventsSettled,
    Listener,
    Notice,
    batch_key,
    event_key,
    user_key,
)
from result_aggregator_service.read_service import EventOutcome, ReadService, Rendered

WaitOutcome = Literal["applied", "parked", "timeout"]


async def wait_for_event(feed: ChangeFeed, reads: ReadService, event_id: UUID, bound_seconds: float) -> WaitOutcome:
    """Until the event was applied or parked, at most `bound_seconds`."""
    with feed.listening([event_key(event_id)]) as listener:  # before the look: no notice falls between
        try:
            async with asyncio.timeout(bound_seconds):
                while (found := await reads.event_outcome(event_id)) is None:
                    if (notified := await _settled(listener, event_id)) is not None:
                        return notified
                return found
        except TimeoutError:
            return "timeout"


async def _settled(listener: Listener, event_id: UUID) -> EventOutcome | None:
    """The outcome a notice announces, or None after a RESYNC (look again)."""
    while True:
        notice = await listener.next(None)
        if notice is RESYNC:
            return None
        if isinstance(notice, EventsSettled):
            if event_id in notice.parked:
                return "parked"
            if event_id in notice.applied:
                return "applied"


@dataclass(frozen=True)
class Snapshot:
    """A batch as a feed shows it."""

    batch_id: str
    version: int
    client_status: str
    body: bytes  # the status answer

    @classmethod
    def of(cls, batch_id: str, rendered: Rendered) -> Snapshot:
        version = int(rendered.etag.rstrip('"').rsplit("-", 1)[1])  # batch_etag: W/"<tag>-<version>"
        return cls(batch_id, version, json.loads(rendered.body)["overall_status"], rendered.body)

    @functools.cached_property
    def summary(self) -> bytes:
        """The event's `data:` JSON: batch id, version, client status."""
        return json.dumps(
            {"batch_id": self.batch_id, "version": self.version, "client_status": self.client_status}
        ).encode()

    @functools.cached_property
    def with_status(self) -> bytes:
        """The same with the status answer as `status`."""
        return self.summary[:-1] + b', "status": ' + self.body + b"}"

    def data(self, with_status: bool) -> bytes:
        return self.with_status if with_status else self.summary


def sse_event(event_id: str, data: bytes) -> bytes:
    return b"id: " + event_id.encode() + b"\nevent: batch\ndata: " + data + b"\n\n"


HEARTBEAT = b": heartbeat\n\n"  # a comment line: clients ignore it, proxies see traffic


class BatchSnapshots:
    def __init__(self, reads: ReadService) -> None:
        self._reads = reads
        self._flights: dict[tuple[str, int], asyncio.Task[Snapshot | None]] = {}

    async def current(self, batch_id: str) -> Snapshot | None:
        """The batch now (None: not registered); the read service shares concurrent misses itself."""
        rendered = await self._reads.batch_status(batch_id)
        return None if rendered is None else Snapshot.of(batch_id, rendered)

    async def at_least(self, batch_id: str, version: int) -> Snapshot | None:
        """The batch after the commit that left `version` (its notice came after the cache let go of the
        state before): every stream told of that commit shares this one read."""
        flight = (batch_id, version)
        task = self._flights.get(flight)
        if task is None:
            task = self._flights[flight] = asyncio.create_task(self.current(batch_id))
            task.add_done_callback(functools.partial(self._landed, flight))
        return await asyncio.shield(task)  # one stream going away does not cancel the others' read

    def _landed(self, flight: tuple[str, int], task: asyncio.Task[Snapshot | None]) -> None:
        del self._flights[flight]
        if not task.cancelled():
            task.exception()  # retrieved: each waiter got it


class StreamSlots:
    """Open streams of this process, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> Callable[[], None] | None:
        """A slot's release (idempotent), or None when all are taken."""
        if self.open >= self.limit:
            return None
        self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open -= 1

        return release


async def batch_events(
    feed: ChangeFeed,
    snapshots: BatchSnapshots,
    batch_id: str,
    last_seen: int | None,
    with_status: bool,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """The batch's feed: its current state at once (unless the client has it: `last_seen`), then every
    newer committed version; a heartbeat after `heartbeat` idle seconds. `id:` is the version."""
    with feed.listening([batch_key(batch_id)]) as listener:
        notice: Notice | None = RESYNC
        while True:
            if notice is None:
                yield HEARTBEAT
            elif notice is RESYNC or (isinstance(notice, BatchChanged) and notice.version > (last_seen or -1)):
                version = notice.version if isinstance(notice, BatchChanged) else None
                snapshot = await (
                    snapshots.current(batch_id) if version is None else snapshots.at_least(batch_id, version)
                )
                if snapshot is not None and snapshot.version > (last_seen if last_seen is not None else -1):
                    last_seen = snapshot.version
                    yield sse_event(str(snapshot.version), snapshot.data(with_status))
            notice = await listener.next(heartbeat)


def user_event_id(batch_id: str, version: int) -> str:
    """The user feed's `id:`: the change itself, `<batch id, percent-encoded>:<version>`."""
    return f"{quote(batch_id, safe='')}:{version}"


def parse_user_event_id(value: str) -> tuple[str, int]:
    """ValueError unless it is an id `user_event_id` made."""
    batch_id, _, version = value.rpartition(":")
    if not batch_id or not version.isdigit():
        raise ValueError(value)
    return unquote(batch_id), int(version)


async def user_events(
    feed: ChangeFeed,
    snapshots: BatchSnapshots,
    newest: Callable[[], Awaitable[list[str]]],
    user_id: str,
    resume: tuple[str, int] | None,
    with_status: bool,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """The user's feed: at once (and after a RESYNC) the current state of the batches `newest` names,
    then every committed change of any of the user's batches. The feed cannot know which batches changed
    while a client was away, so a resume re-sends those batches' state; only the batch and version the
    client names in Last-Event-ID (`resume`) is skipped unless it moved on. Clients drop what they have
    by version."""
    sent: dict[str, int] = dict([resume]) if resume is not None else {}
    with feed.listening([user_key(user_id)]) as listener:
        notice: Notice | None = RESYNC
        while True:
            if notice is None:
                yield HEARTBEAT
            else:
                if notice is RESYNC:
                    found = [await snapshots.current(batch_id) for batch_id in await newest()]
                elif isinstance(notice, BatchChanged) and notice.version > sent.get(notice.batch_id, -1):
                    found = [await snapshots.at_least(notice.batch_id, notice.version)]
                else:
                    found = []
                for snapshot in found:
                    if snapshot is not None and snapshot.version > sent.get(snapshot.batch_id, -1):
                        sent[snapshot.batch_id] = snapshot.version
                        yield sse_event(user_event_id(snapshot.batch_id, snapshot.version), snapshot.data(with_status))
            notice = await listener.next(heartbeat)
