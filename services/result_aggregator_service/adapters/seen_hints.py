"""Redis: the worker's fast-path memory of applied event ids (the seen-event hints)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

_log = structlog.get_logger(__name__)

# KEYS: the seen-id sets to look in; ARGV: event ids. Returns 1/0 per id: in any of the sets or not.
_ANY_MEMBER: Final = """
local hits = {}
for i = 1, #ARGV do
  hits[i] = 0
  for k = 1, #KEYS do
    if redis.call('SISMEMBER', KEYS[k], ARGV[i]) == 1 then hits[i] = 1 break end
  end
end
return hits
"""


class RedisSeenEventHints:
    """The fast-path duplicate check. Only a hint: a Redis failure costs the shortcut, nothing else.

    Applied ids go into one Redis set per UTC day (`ras:seen:{date}`), kept for the TTL: a micro-batch
    costs one SADD to remember and one script call to check, not a command per event.
    """

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._days = -(-ttl_seconds // 86_400)
        self._any_member = redis.register_script(_ANY_MEMBER)

    async def seen(self, event_ids: Collection[UUID]) -> set[UUID]:
        if not event_ids:
            return set()
        ids = list(event_ids)
        day_keys = self._day_keys()
        try:
            hits = await self._any_member(keys=day_keys, args=[str(i) for i in ids])
        except (RedisError, OSError) as error:
            _log.warning("seen_hints_unavailable", error=str(error))
            return set()
        return {event_id for event_id, hit in zip(ids, hits, strict=True) if hit}

    async def remember(self, event_ids: Collection[UUID]) -> None:
        if not event_ids:
            return
        today = self._day_keys()[0]
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.sadd(today, *(str(event_id) for event_id in event_ids))
            pipe.expire(today, self._ttl + 86_400)
            await pipe.execute()
        except (RedisError, OSError) as error:
            _log.warning("seen_hints_unavailable", error=str(error))

    def _day_keys(self) -> list[str]:
        today = datetime.now(UTC).date()
        return [f"ras:seen:{today - timedelta(days=back)}" for back in range(self._days + 1)]
