"""A process-local layer over the Redis response cache, for the API's hottest read: a batch's status.

A local entry is a copy of what Redis held when this process read or filled it. The worker's
invalidation script, in the same call that deletes a batch's Redis answer (when it takes the hold
before its commit, and again when it releases it), announces the batch id on `ras:invalidations`
(`INVALIDATIONS_CHANNEL`). Each API process listens on its own connection and, before every local hit,
applies what has arrived, reading the socket itself (not an event-loop buffer): Redis sends the
announcement in the same turn as its reply to the worker's script call, so a read that follows the
worker's commit (the worker acknowledges its offsets only after that call) never gets the older copy.

- A fill that started before an announcement for its key (or before the listener was healthy) is not
  kept: entries carry the announcement sequence number read before the Redis read.
- While the listener is not subscribed (starting, Redis down, a missed heartbeat) nothing is kept or
  served locally: every read goes to Redis, as without this layer.
- Entries also expire after `ttl_seconds` (short: a bound on any notice lost in a way the heartbeat
  misses) and the oldest go beyond `max_entries`.
User list pages and essay answers are not kept here: they pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from typing import Final

import structlog
from redis import Redis as SyncRedis
from redis.client import PubSub
from redis.exceptions import RedisError

from result_aggregator_service.adapters.response_cache import FLUSH_ALL, INVALIDATIONS_CHANNEL
from result_aggregator_service.read_service import ResponseCache

_IDLE_DRAIN_SECONDS: Final = 0.05  # how often an idle process reads what has arrived
_HEARTBEAT_SECONDS: Final = 1.0
_SILENCE_SECONDS: Final = 3.0  # no answer to a heartbeat this long: the connection is presumed dead
_log = structlog.get_logger(__name__)


class LocalEntries:
    """The entries and the announcement bookkeeping; pure in-memory logic, no I/O."""

    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.sequence = 0  # announcements applied so far
        # the sequence of each key's last announcement (bounded); `_floor` stands for those forgotten
        self._announced: OrderedDict[str, int] = OrderedDict()
        self._floor = 0

    def get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: bytes, read_at_sequence: int, now: float) -> bool:
        """Keep `value` unless `key` was announced (or everything was dropped) since `read_at_sequence`."""
        if self._announced.get(key, self._floor) > read_at_sequence or self._floor > read_at_sequence:
            return False
        self._entries[key] = (value, now + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return True

    def announce(self, keys: list[str]) -> None:
        self.sequence += 1
        for key in keys:
            self._entries.pop(key, None)
            self._announced[key] = self.sequence
            self._announced.move_to_end(key)
        while len(self._announced) > 4 * self._max_entries:
            _, forgotten = self._announced.popitem(last=False)
            self._floor = max(self._floor, forgotten)

    def drop_all(self) -> None:
        self.sequence += 1
        self._entries.clear()
        self._announced.clear()
        self._floor = self.sequence


class InvalidationListener:
    """This process's subscription to `ras:invalidations`: a synchronous redis-py connection read
    without blocking (a poll of its socket), so pending announcements are applied on the request's
    own path, in order, before a local entry is served; a background task drains it while idle,
    sends heartbeats and reconnects."""

    def __init__(self, redis_url: str, entries: LocalEntries) -> None:
        self._redis_url = redis_url
        self._entries = entries
        self._pubsub: PubSub | None = None
        self._subscribed = False
        self._heard_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._subscribed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ras-invalidation-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._disconnect()

    def drain(self) -> bool:
        """Apply every announcement that has arrived; whether local entries may be used."""
        if self._pubsub is None:
            return False
        try:
            while (message := self._pubsub.get_message(timeout=0.0)) is not None:
                self._apply(message)
        except (RedisError, OSError) as error:
            _log.warning("local_cache_listener_lost", error=str(error))
            self._disconnect()
        return self._subscribed

    def _apply(self, message: dict[str, object]) -> None:
        self._heard_at = time.monotonic()
        kind = message["type"]
        if kind == "subscribe":
            self._subscribed = True
        elif kind == "message":
            data = message["data"]
            assert isinstance(data, bytes)
            if data == FLUSH_ALL.encode():
                self._entries.drop_all()
            else:
                self._entries.announce(data.decode().split("\n"))

    async def _run(self) -> None:
        while True:
            if self._pubsub is None:
                with contextlib.suppress(RedisError, OSError):
                    self._pubsub = await asyncio.to_thread(self._connect)  # connecting blocks: off the loop
                    self._heard_at = time.monotonic()
            else:
                self.drain()
                self._heartbeat()
            await asyncio.sleep(_IDLE_DRAIN_SECONDS if self._pubsub is not None else _HEARTBEAT_SECONDS)

    def _connect(self) -> PubSub:
        client = SyncRedis.from_url(self._redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
        pubsub = PubSub(client.connection_pool)
        pubsub.subscribe(INVALIDATIONS_CHANNEL)
        return pubsub

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._heard_at > _SILENCE_SECONDS:
            _log.warning("local_cache_listener_silent", seconds=round(now - self._heard_at, 1))
            self._disconnect()
            return
        if now - self._heard_at > _HEARTBEAT_SECONDS and self._pubsub is not None:
            try:
                self._pubsub.ping()
            except (RedisError, OSError):
                self._disconnect()

    def _disconnect(self) -> None:
        # whatever was announced while we were not listening is unknown: forget every local entry
        self._subscribed = False
        self._entries.drop_all()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                self._pubsub.close()
            self._pubsub = None


class LocallyCachedResponses:
    """`ResponseCache` with batch answers kept in this process too (the wrapped cache stays the truth)."""

    def __init__(self, shared: ResponseCache, entries: LocalEntries, listener: InvalidationListener) -> None:
        self._shared = shared
        self._entries = entries
        self._listener = listener

    def local_batch(self, batch_id: str) -> bytes | None:
        """This process's copy of the batch's answer, when it may be served (announcements applied first)."""
        return self._entries.get(batch_id, time.monotonic()) if self._listener.drain() else None

    async def read_batch(self, batch_id: str) -> tuple[bytes | None, str | None]:
        if (value := self.local_batch(batch_id)) is not None:
            return value, None
        sequence = self._entries.sequence
        value, generation = await self._shared.read_batch(batch_id)
        if value is not None and self._listener.drain():
            self._entries.put(batch_id, value, sequence, time.monotonic())
        # the fill must know which announcements it raced with: carried in the generation token
        return value, None if generation is None else f"{generation}/{sequence}"

    async def fill_batch(self, batch_id: str, generation: str, value: bytes, version: int) -> bool:
        shared_generation, _, sequence = generation.rpartition("/")
        kept = await self._shared.fill_batch(batch_id, shared_generation, value, version)
        if kept and self._listener.drain():
            self._entries.put(batch_id, value, int(sequence), time.monotonic())
        return kept

    async def read_essay(self, batch_id: str, essay_id: str) -> tuple[bytes | None, str | None]:
        return await self._shared.read_essay(batch_id, essay_id)

    async def fill_essay(self, batch_id: str, essay_id: str, generation: str, value: bytes, version: int) -> bool:
        return await self._shared.fill_essay(batch_id, essay_id, generation, value, version)

    async def read_page(self, user_id: str, page: str) -> tuple[bytes | None, str | None]:
        return await self._shared.read_page(user_id, page)

    async def fill_page(self, user_id: str, page: str, generation: str, value: bytes) -> bool:
        return await self._shared.fill_page(user_id, page, generation, value)
