"""Read-your-writes and the live feeds' events: the read service, driven by the process's change notices.

- `wait_for_event`: one look at the worker's records (processed/parked events), then the notices; a
  notice is published after the commit and the cache invalidation, so the read that follows a settled
  wait includes the event. After a RESYNC (the subscription reconnected) it looks again, once.
- `BatchSnapshots`: what a feed sends for a batch (version, client status, the status body). Streams
  watching the same batch or user share one read and one encoding of each change.
- `StreamSlots`: the per-process cap on open streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote
from uuid import UUID

import structlog

from result_aggregator_service.live_changes import (
    RESYNC,
    BatchChanged,
    ChangeFeed,
    EventsSettled,
    Key,
    Listener,
    Notice,
    Resync,
    batch_key,
    event_key,
    user_key,
)
from result_aggregator_service.read_service import EventOutcome, ReadService, Rendered

WaitOutcome = Literal["applied", "parked", "timeout"]
_log = structlog.get_logger(__name__)


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


async def _settled(listener: Listener[Notice], event_id: UUID) -> EventOutcome | None:
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
    _frames: dict[tuple[str, bool], bytes] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, batch_id: str, rendered: Rendered) -> Snapshot:
        version = int(rendered.etag.rstrip('"').rsplit("-", 1)[1])  # batch_etag: W/"<tag>-<version>"
        return cls(batch_id, version, json.loads(rendered.body)["overall_status"], rendered.body)

    def frame(self, feed: Literal["batch", "user"], with_status: bool) -> bytes:
        """The whole SSE event, made once per snapshot: every stream of that feed asking for the same shares it."""
        if (made := self._frames.get((feed, with_status))) is None:
            made = self._frames[feed, with_status] = self._made(feed, with_status)
        return made

    def _made(self, feed: str, with_status: bool) -> bytes:
        data = {"batch_id": self.batch_id, "version": self.version, "client_status": self.client_status}
        body = json.dumps(data).encode()
        if with_status:
            body = body[:-1] + b', "status": ' + self.body + b"}"
        event_id = str(self.version) if feed == "batch" else user_event_id(self.batch_id, self.version)
        return b"id: " + event_id.encode() + b"\nevent: batch\ndata: " + body + b"\n\n"


HEARTBEAT = b": heartbeat\n\n"  # a comment line: clients ignore it, proxies see traffic


def user_event_id(batch_id: str, version: int) -> str:
    """The user feed's `id:`: the change itself, `<batch id, percent-encoded>:<version>`."""
    return f"{quote(batch_id, safe='')}:{version}"


def parse_user_event_id(value: str) -> tuple[str, int]:
    """ValueError unless it is an id `user_event_id` made."""
    batch_id, _, version = value.rpartition(":")
    if not batch_id or not version.isdigit():
        raise ValueError(value)
    return unquote(batch_id), int(version)


class BatchSnapshots:
    """Reads batches for the feeds. One watcher per watched key (a batch, a user) in the process reads
    each announced change once and hands the snapshot to every stream watching that key, so a change
    costs one read and, per stream, one wake-up and one write."""

    def __init__(self, feed: ChangeFeed, reads: ReadService) -> None:
        self._feed = feed
        self._reads = reads
        self._watches: dict[Key, _Watch] = {}

    async def current(self, batch_id: str) -> Snapshot | None:
        """The batch now (None: not registered); the read service shares concurrent misses itself."""
        rendered = await self._reads.batch_status(batch_id)
        return None if rendered is None else Snapshot.of(batch_id, rendered)

    @contextlib.contextmanager
    def watching(self, key: Key) -> Iterator[Listener[Snapshot]]:
        """The snapshot of each change announced for `key`, or RESYNC (notices were missed: re-read)."""
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(self._feed, key, self.current)
        stream = Listener[Snapshot]()
        watch.streams.add(stream)
        try:
            yield stream
        finally:
            watch.streams.discard(stream)
            if not watch.streams:
                del self._watches[key]
                watch.close()


class _Watch:
    def __init__(self, feed: ChangeFeed, key: Key, read: Callable[[str], Awaitable[Snapshot | None]]) -> None:
        self.streams: set[Listener[Snapshot]] = set()
        self._read = read
        self._listening = feed.listening([key])
        listener = self._listening.__enter__()  # now: a notice after any stream's first read reaches it
        self._task = asyncio.create_task(self._hand_out(listener))

    async def _hand_out(self, listener: Listener[Notice]) -> None:
        while True:
            notice = await listener.next(None)
            handed: Snapshot | Resync | None = RESYNC
            if isinstance(notice, BatchChanged):
                try:
                    handed = await self._read(notice.batch_id)  # after the commit that notice announces
                except Exception:  # each stream is told to read for itself (and ends if that fails too)
                    _log.warning("live_feed_read_failed", batch_id=notice.batch_id, exc_info=True)
            if handed is not None:
                for stream in self.streams:
                    stream.deliver(handed)

    def close(self) -> None:
        self._task.cancel()
        self._listening.__exit__(None, None, None)


async def batch_events(
    snapshots: BatchSnapshots, batch_id: str, last_seen: int | None, with_status: bool, heartbeat: float
) -> AsyncIterator[bytes]:
    """The batch's feed: its current state at once (unless the client has it: `last_seen`), then every
    newer committed version; a heartbeat after `heartbeat` idle seconds. `id:` is the version."""
    newest = last_seen if last_seen is not None else -1
    with snapshots.watching(batch_key(batch_id)) as watched:
        item: Snapshot | Resync | None = RESYNC
        while True:
            if item is None:
                yield HEARTBEAT
            else:
                snapshot = await snapshots.current(batch_id) if item is RESYNC else item
                if snapshot is not None and snapshot.version > newest:
                    newest = snapshot.version
                    yield snapshot.frame("batch", with_status)
            item = await watched.next(heartbeat)


async def user_events(
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
    with snapshots.watching(user_key(user_id)) as watched:
        item: Snapshot | Resync | None = RESYNC
        while True:
            if item is None:
                yield HEARTBEAT
                found: list[Snapshot | None] = []
            else:
                found = [await snapshots.current(b) for b in await newest()] if item is RESYNC else [item]
            for snapshot in found:
                if snapshot is not None and snapshot.version > sent.get(snapshot.batch_id, -1):
                    sent[snapshot.batch_id] = snapshot.version
                    yield snapshot.frame("user", with_status)
            item = await watched.next(heartbeat)


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
