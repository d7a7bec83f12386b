"""The API process's one Redis pub/sub subscription to the worker's notices, fed into its `ChangeHub`.

One connection per process whatever the number of listeners. It reconnects with capped backoff; every
(re)subscription tells every listener to re-read (`RESYNC`), since notices published while it was not
subscribed are gone. An idle connection is checked with a PING every `HEALTH_CHECK_SECONDS` (redis-py
does it when `get_message` is called after that long), so a silently dead one is noticed and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterable
from typing import Any, Final
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from huleedu_service_libs.retry import Backoff
from result_aggregator_service.adapters.response_cache import CHANGES_CHANNEL, EVENTS_CHANNEL
from result_aggregator_service.live_changes import (
    RESYNC,
    BatchChanged,
    ChangeHub,
    EventsSettled,
    Key,
    Listener,
    Notice,
)

HEALTH_CHECK_SECONDS: Final = 5.0
_CHANNELS: Final = (CHANGES_CHANNEL, EVENTS_CHANNEL)
_log = structlog.get_logger(__name__)


def decode_notice(channel: bytes, data: bytes) -> Notice:
    body: dict[str, Any] = json.loads(data)
    if channel.decode() == EVENTS_CHANNEL:
        return EventsSettled(frozenset(map(UUID, body["applied"])), frozenset(map(UUID, body["parked"])))
    return BatchChanged(body["batch_id"], int(body["version"]), frozenset(body.get("user_ids", ())))


class RedisChangeFeed:
    """`ChangeFeed` over Redis pub/sub; `start()` subscribes in the background, `stop()` ends it."""

    def __init__(self, redis_url: str, backoff: Backoff) -> None:
        self._url = redis_url
        self.client_name = f"ras-change-feed-{uuid.uuid4().hex[:12]}"  # its connection in CLIENT LIST
        self._backoff = backoff
        self.hub = ChangeHub()
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def listening(self, keys: Iterable[Key]) -> contextlib.AbstractContextManager[Listener[Notice]]:
        return self.hub.listening(keys)

    def start(self) -> None:
        self._task = asyncio.create_task(self._subscribe_for_ever(), name="ras-change-feed")

    async def stop(self) -> None:
        # redis-py may turn a cancellation into a connection error or a quiet return: the loops check the flag
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _subscribe_for_ever(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await self._subscribed()
            except (RedisError, OSError) as error:
                if self._stopping:
                    return
                self.subscribed.clear()
                attempt += 1
                delay = self._backoff.delay(attempt)
                report = _log.warning if attempt == 1 else _log.debug
                report("change_feed_disconnected", attempt=attempt, delay_seconds=round(delay, 3), error=repr(error))
                await asyncio.sleep(delay)
            else:
                attempt = 0

    async def _subscribed(self) -> None:
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=1.0,
            socket_keepalive=True,
            health_check_interval=HEALTH_CHECK_SECONDS,
            client_name=self.client_name,
        )
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(*_CHANNELS)
                confirmed = 0
                while not self._stopping:
                    message = await pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._deliver(message["channel"], message["data"])
                    elif message["type"] == "subscribe" and (confirmed := confirmed + 1) == len(_CHANNELS):
                        # only now is every later notice certain to come: what came before is re-read
                        self.subscribed.set()
                        _log.info("change_feed_subscribed")
                        self.hub.publish(RESYNC)
        finally:
            await client.aclose()

    def _deliver(self, channel: bytes, data: bytes) -> None:
        try:
            notice = decode_notice(channel, data)
        except (ValueError, KeyError, TypeError) as error:  # not ours to crash on: skip it, say so
            _log.warning("change_notice_unreadable", channel=channel.decode(errors="replace"), error=repr(error))
            return
        self.hub.publish(notice)
