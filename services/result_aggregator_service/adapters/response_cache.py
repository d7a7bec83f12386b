"""Redis: the API-level response cache, its invalidation with change notices, and the seen-event hints.

Key scheme (one place): `ras:batch:{batch_id}` holds a batch's cached response; `ras:user:{user_id}` is a
hash of the user's cached list pages. Each has a generation counter (`ras:gen:...`) that invalidation
bumps, so a reader that started before an invalidation cannot put its older answer back (`fill` is a
compare-and-set on the generation), and a hold (`ras:hold:...`) set for the length of a commit, during
which nothing is cached at all.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from result_aggregator_service.service_layer.ports import BatchChange

CHANGES_CHANNEL: Final = "ras:changes"
_log = structlog.get_logger(__name__)

# A hold outlives a worker that dies mid-commit by this long at most.
_HOLD_SECONDS: Final = 30

# KEYS: value, generation, hold; ARGV: expected generation, field ("" for a plain key), value, ttl
_FILL_IF_CURRENT: Final = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 1
"""

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

# KEYS: (value, generation, hold) per affected key; ARGV: hold ('1' set, '0' release), generation ttl,
# hold seconds, then the change notices to publish (only on release). One round trip per micro-batch.
_INVALIDATE: Final = (
    """
for i = 1, #KEYS, 3 do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[i + 1])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
  if ARGV[1] == '1' then
    redis.call('SET', KEYS[i + 2], '1', 'EX', ARGV[3])
  else
    redis.call('DEL', KEYS[i + 2])
  end
end
for i = 4, #ARGV do
  redis.call('PUBLISH', '"""
    + CHANGES_CHANNEL
    + """', ARGV[i])
end
return 1
"""
)


def is_redis_unavailable(error: BaseException) -> bool:
    return isinstance(error, RedisError | OSError)


def batch_key(batch_id: str) -> str:
    return f"ras:batch:{batch_id}"


def user_key(user_id: str) -> str:
    return f"ras:user:{user_id}"


def _generation_key(key: str) -> str:
    return f"ras:gen:{key.removeprefix('ras:')}"


def _hold_key(key: str) -> str:
    return f"ras:hold:{key.removeprefix('ras:')}"


def _affected_keys(changes: Sequence[BatchChange]) -> list[str]:
    keys = [batch_key(c.batch_id) for c in changes] + [user_key(u) for c in changes for u in c.user_ids]
    return list(dict.fromkeys(keys))


class RedisResponseCache:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    async def read(self, key: str, page: str = "") -> tuple[bytes | None, str]:
        """The cached value (None on a miss) and the generation to hand back to `fill`."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(key, page) if page else pipe.get(key)
        pipe.get(_generation_key(key))
        value, generation = await pipe.execute()
        return value, (generation.decode() if generation else "0")

    async def fill(self, key: str, generation: str, value: bytes, page: str = "") -> bool:
        """Cache `value` unless the key was invalidated since `read` returned `generation`."""
        keys = [key, _generation_key(key), _hold_key(key)]
        stored = await self._redis.eval(_FILL_IF_CURRENT, len(keys), *keys, generation, page, value, self._ttl)
        return bool(stored)

    # Both raise when Redis is unreachable: the micro-batch then rolls back (or, after its commit, is
    # replayed as duplicates that announce their batches again) and is retried, so consumption pauses
    # and no offset passes a stale cache entry.
    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        if changes:
            await self._invalidate(changes, hold=True)

    async def batches_changed(self, changes: Sequence[BatchChange]) -> None:
        if changes:
            await self._invalidate(changes, hold=False)

    async def _invalidate(self, changes: Sequence[BatchChange], hold: bool) -> None:
        keys = [k for key in _affected_keys(changes) for k in (key, _generation_key(key), _hold_key(key))]
        notices = [] if hold else [json.dumps({"batch_id": c.batch_id, "version": c.version}) for c in changes]
        await self._redis.eval(
            _INVALIDATE, len(keys), *keys, "1" if hold else "0", self._ttl * 2, _HOLD_SECONDS, *notices
        )


class RedisSeenEventHints:
    """The fast-path duplicate check. Only a hint: a Redis failure costs the shortcut, nothing else.

    Applied ids go into one Redis set per UTC day (`ras:seen:{date}`), kept for the TTL: a micro-batch
    costs one SADD to remember and one script call to check, not a command per event.
    """

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._days = -(-ttl_seconds // 86_400)

    async def seen(self, event_ids: Collection[UUID]) -> set[UUID]:
        if not event_ids:
            return set()
        ids = list(event_ids)
        day_keys = self._day_keys()
        try:
            hits = await self._redis.eval(_ANY_MEMBER, len(day_keys), *day_keys, *(str(i) for i in ids))
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
