"""The API process's view of the worker's change notices: one subscription, fanned out in memory.

Each API process holds one `ChangeFeed`: a single subscription to the worker's notices (Redis pub/sub in
production, `adapters/change_feed.py`; in memory for route tests) feeding a `ChangeHub`. Requests listen
on the hub by key (a batch, a user, an event id): a notice costs one dictionary lookup per key it names
and a queue put per listener, never a query. Notices can be missed (the subscription reconnects, a slow
listener's queue overflows): the listener is then told `RESYNC` and re-reads the current state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar
from uuid import UUID

T = TypeVar("T")
LISTENER_QUEUE = 64  # notices a listener may fall behind by before it is told to re-read instead


@dataclass(frozen=True)
class BatchChanged:
    """A committed change: the batch's new version and its owners (whose feeds show it)."""

    batch_id: str
    version: int
    user_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EventsSettled:
    """Events a micro-batch applied (now or before) or parked, announced after its commit."""

    applied: frozenset[UUID]
    parked: frozenset[UUID]


class Resync(Enum):
    """Notices may have been missed: re-read the current state."""

    RESYNC = "resync"


RESYNC = Resync.RESYNC
Notice = BatchChanged | EventsSettled | Resync
Key = tuple[str, str]  # ("batch", id), ("user", id), ("event", uuid)


def batch_key(batch_id: str) -> Key:
    return ("batch", batch_id)


def user_key(user_id: str) -> Key:
    return ("user", user_id)


def event_key(event_id: UUID) -> Key:
    return ("event", str(event_id))


class Listener(Generic[T]):
    """A queue of what it is told (notices, or what is made of them), RESYNC when it fell behind."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[T | Resync] = asyncio.Queue(LISTENER_QUEUE)

    def deliver(self, notice: T | Resync) -> None:
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:  # fallen behind: what it missed is replaced by one re-read
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    async def next(self, idle_seconds: float | None) -> T | Resync | None:
        """The next notice, or None after `idle_seconds` without one."""
        try:
            async with asyncio.timeout(idle_seconds):  # no task per wait, unlike wait_for: streams wait a lot
                return await self._queue.get()
        except TimeoutError:
            return None


class ChangeHub:
    """In-process fan-out of notices to the listeners of the keys they name."""

    def __init__(self) -> None:
        self._listeners: dict[Key, set[Listener[Notice]]] = {}

    @contextlib.contextmanager
    def listening(self, keys: Iterable[Key]) -> Iterator[Listener[Notice]]:
        listener, keys = Listener[Notice](), list(keys)
        for key in keys:
            self._listeners.setdefault(key, set()).add(listener)
        try:
            yield listener
        finally:
            for key in keys:
                listeners = self._listeners.get(key)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listeners[key]

    def publish(self, notice: Notice) -> None:
        for listener in self._addressed(notice):
            listener.deliver(notice)

    def _addressed(self, notice: Notice) -> set[Listener[Notice]]:
        if isinstance(notice, BatchChanged):
            keys = [batch_key(notice.batch_id), *(user_key(u) for u in notice.user_ids)]
        elif isinstance(notice, EventsSettled):
            keys = [event_key(i) for i in notice.applied | notice.parked]
        else:
            return {listener for listeners in self._listeners.values() for listener in listeners}
        return {listener for key in keys for listener in self._listeners.get(key, ())}


class ChangeFeed(Protocol):
    """The process's subscription to the change notices (the port the routes use)."""

    def listening(self, keys: Iterable[Key]) -> contextlib.AbstractContextManager[Listener[Notice]]: ...


class InMemoryChangeFeed:
    """A feed the test (or the in-memory cache, as a worker would) publishes to directly."""

    def __init__(self) -> None:
        self.hub = ChangeHub()

    def listening(self, keys: Iterable[Key]) -> contextlib.AbstractContextManager[Listener[Notice]]:
        return self.hub.listening(keys)

    def publish(self, notice: Notice) -> None:
        self.hub.publish(notice)
