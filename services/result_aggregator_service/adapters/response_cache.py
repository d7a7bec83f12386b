"""Redis: the API-level response cache, and its invalidation by the worker with change notices.

Keys (one place):
- `ras:batch:{batch_id}`: a batch's cached status answer; `ras:user:{user_id}`: a hash of the user's
  cached list pages, at most `max_pages` fields, expiring `ttl` after its first fill (fills never renew
  it, so no page outlives the TTL and the hash cannot grow without bound).
- `ras:essays:{batch_id}`: a hash of the batch's cached essay answers (field: essay id). It has no
  generation, hold or fence of its own: it is filled under the batch's and deleted with it, so every
  rule below covers it as it covers the batch; it expires `ttl` after its first fill, like a user's pages.
- `ras:gen:...`: a generation per key that every invalidation bumps. A fill is a compare-and-set on the
  generation read before the query, so an answer older than an invalidation never goes back.
- `ras:hold:...`: the commits under way on the key, a sorted set of (owner token, deadline). Each
  worker holds its keys from just before its commit to just after and releases only its own hold;
  while any live hold exists nothing is cached. A hold lapses after `HOLD_SECONDS` (a dead worker).
- `ras:fence:batch:{batch_id}`: the version the newest commit under way (or done) leaves. A status
  fill of an older version is refused, so even a commit slower than its hold cannot get the state
  before it cached.
- `ras:flushes`: bumped by `ras rebuild`'s swap, which then drops every cached answer. The generation
  a fill compares is `<key's generation>.<flushes>`, so an answer read from the read model before a swap
  is never cached after it. Versions of a new read model start above every older one, so the fences of
  the old one refuse nothing of the new one.
Invalidation runs with `allow-oom`: it deletes before it writes and must work while Redis is full.
A Redis failure on the read path is logged and reported as "no cache" (generation None), never raised.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Final

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT

from result_aggregator_service.service_layer.ports import NOTHING_SETTLED, BatchChange, SettledEvents

CHANGES_CHANNEL: Final = "ras:changes"  # per changed batch: {"batch_id", "version", "user_ids"}
EVENTS_CHANNEL: Final = "ras:events"  # per micro-batch that settled any: {"applied": [ids], "parked": [ids]}
# the batch ids whose answers an invalidation deletes, "\n"-joined, announced on hold and on release
# (or FLUSH_ALL after a flush): what each API process's local copies follow (local_response_cache.py)
INVALIDATIONS_CHANNEL: Final = "ras:invalidations"
FLUSH_ALL: Final = "*"
FLUSHES_KEY: Final = "ras:flushes"
HOLD_SECONDS: Final = 30
FENCE_SECONDS: Final = 24 * 3600
_log = structlog.get_logger(__name__)

# the fill's generation (the key's and the flushes', as the read returned them) is still the current one
_GENERATION_READ: Final = (
    "if (redis.call('GET', KEYS[2]) or '0') .. '.' .. (redis.call('GET', KEYS[{flushes}]) or '0') ~= ARGV[1]"
    " then return 0 end\n"
)
_LIVE_HOLDS: Final = """
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now[1] * 1000 + math.floor(now[2] / 1000))
if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
"""

# A fill of a batch's answers: refused unless the generation is still the one read, no commit holds
# the batch and the answer is not older than the batch's fence.
# KEYS: value, generation, hold, fence, flushes; ARGV: generation read, version of the value, value, ttl, ...
_FRESH_FOR_BATCH: Final = (
    _GENERATION_READ.format(flushes=5)
    + _LIVE_HOLDS
    + "if tonumber(ARGV[2]) < tonumber(redis.call('GET', KEYS[4]) or '0') then return 0 end\n"
)
_FILL_BATCH: Final = _FRESH_FOR_BATCH + "redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])\nreturn 1\n"
# KEYS[1] is the essays hash, the rest the batch's; ARGV[5]: the essay id
_FILL_ESSAY: Final = (
    _FRESH_FOR_BATCH
    + "redis.call('HSET', KEYS[1], ARGV[5], ARGV[3])\nredis.call('EXPIRE', KEYS[1], ARGV[4], 'NX')\nreturn 1\n"
)

# KEYS: pages hash, generation, hold, flushes; ARGV: generation read, page, value, ttl, max pages
_FILL_PAGE: Final = (
    _GENERATION_READ.format(flushes=4)
    + _LIVE_HOLDS
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4], 'NX')
return 1
"""
)

# KEYS: (value, generation, hold) per affected key, then the fences of the changed batches, then their
# essays hashes (one DEL each: the essays ride on their batch's generation, holds and fence).
# ARGV: 'hold' or 'release', owner token, hold ms, generation ttl, fence ttl, #triples, #fences, the
# fences' versions, the invalidation announcement ('' for none), the settled events' notice ('' for
# none), then the change notices (both published on release, after the deletes: a reader told of them
# cannot be served the state before).
_INVALIDATE: Final = (
    """#!lua flags=allow-oom
local n, m = tonumber(ARGV[6]), tonumber(ARGV[7])
for i = 1, 3 * n, 3 do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[i + 1])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[4])
end
for j = 1, m do redis.call('DEL', KEYS[3 * n + m + j]) end
if ARGV[8 + m] ~= '' then redis.call('PUBLISH', '"""
    + INVALIDATIONS_CHANNEL
    + """', ARGV[8 + m]) end
if ARGV[1] == 'hold' then
  local now = redis.call('TIME')
  local deadline = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[3])
  for i = 3, 3 * n, 3 do
    redis.call('ZADD', KEYS[i], deadline, ARGV[2])
    if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
  end
  for j = 1, m do
    if tonumber(ARGV[7 + j]) > tonumber(redis.call('GET', KEYS[3 * n + j]) or '0') then
      redis.call('SET', KEYS[3 * n + j], ARGV[7 + j], 'EX', ARGV[5])
    end
  end
  return 1
end
for i = 3, 3 * n, 3 do redis.call('ZREM', KEYS[i], ARGV[2]) end
for k = 10 + m, #ARGV do redis.call('PUBLISH', '"""
    + CHANGES_CHANNEL
    + """', ARGV[k]) end
if ARGV[9 + m] ~= '' then redis.call('PUBLISH', '"""
    + EVENTS_CHANNEL
    + """', ARGV[9 + m]) end
return 1
"""
)


_CACHED_ANSWERS: Final = ("ras:batch:*", "ras:essays:*", "ras:user:*")


def batch_key(batch_id: str) -> str:
    return f"ras:batch:{batch_id}"


def essays_key(batch_id: str) -> str:
    return f"ras:essays:{batch_id}"


def user_key(user_id: str) -> str:
    return f"ras:user:{user_id}"


def _generation_key(key: str) -> str:
    return f"ras:gen:{key.removeprefix('ras:')}"


def _hold_key(key: str) -> str:
    return f"ras:hold:{key.removeprefix('ras:')}"


def _fence_key(batch_id: str) -> str:
    return f"ras:fence:batch:{batch_id}"


class RedisResponseCache:
    """The API's `ResponseCache` and the worker's `ChangeSink` over one Redis."""

    def __init__(self, redis: Redis, ttl_seconds: int, max_pages: int = 20) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._max_pages = max_pages
        self._token = uuid.uuid4().hex  # this process's holds
        self._fill_batch = redis.register_script(_FILL_BATCH)
        self._fill_essay = redis.register_script(_FILL_ESSAY)
        self._fill_page = redis.register_script(_FILL_PAGE)
        self._invalidate = redis.register_script(_INVALIDATE)

    async def read_batch(self, batch_id: str) -> tuple[bytes | None, str | None]:
        key = batch_key(batch_id)
        return await self._read(self._redis.mget(key, _generation_key(key), FLUSHES_KEY))

    async def read_essay(self, batch_id: str, essay_id: str) -> tuple[bytes | None, str | None]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(essays_key(batch_id), essay_id)
        pipe.get(_generation_key(batch_key(batch_id)))
        pipe.get(FLUSHES_KEY)
        return await self._read(pipe.execute())

    async def read_page(self, user_id: str, page: str) -> tuple[bytes | None, str | None]:
        key = user_key(user_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(key, page)
        pipe.get(_generation_key(key))
        pipe.get(FLUSHES_KEY)
        return await self._read(pipe.execute())

    async def fill_batch(self, batch_id: str, generation: str, value: bytes, version: int) -> bool:
        key = batch_key(batch_id)
        keys = [key, _generation_key(key), _hold_key(key), _fence_key(batch_id), FLUSHES_KEY]
        return await self._fill(self._fill_batch(keys=keys, args=[generation, version, value, self._ttl]))

    async def fill_essay(self, batch_id: str, essay_id: str, generation: str, value: bytes, version: int) -> bool:
        key = batch_key(batch_id)
        keys = [essays_key(batch_id), _generation_key(key), _hold_key(key), _fence_key(batch_id), FLUSHES_KEY]
        return await self._fill(self._fill_essay(keys=keys, args=[generation, version, value, self._ttl, essay_id]))

    async def fill_page(self, user_id: str, page: str, generation: str, value: bytes) -> bool:
        key = user_key(user_id)
        keys = [key, _generation_key(key), _hold_key(key), FLUSHES_KEY]
        args: list[EncodableT] = [generation, page, value, self._ttl, self._max_pages]
        return await self._fill(self._fill_page(keys=keys, args=args))

    async def _read(self, command: object) -> tuple[bytes | None, str | None]:
        try:
            value, generation, flushes = await command  # type: ignore[misc]
        except (RedisError, OSError) as error:
            _log.warning("response_cache_unavailable", operation="read", error=str(error))
            return None, None
        return value, f"{generation.decode() if generation else '0'}.{flushes.decode() if flushes else '0'}"

    async def _fill(self, command: object) -> bool:
        try:
            return bool(await command)  # type: ignore[misc]
        except (RedisError, OSError) as error:
            _log.warning("response_cache_unavailable", operation="fill", error=str(error))
            return False

    async def flush(self) -> int:
        """After a swap: no answer read before it is cached from now on, and none cached before it is
        served once this returns; how many keys went. Raises when Redis is unreachable (the caller retries)."""
        await self._redis.incr(FLUSHES_KEY)
        dropped = 0
        for pattern in _CACHED_ANSWERS:
            async for keys in _pages(self._redis.scan_iter(match=pattern, count=1000)):
                dropped += await self._redis.unlink(*keys)
        await self._redis.publish(INVALIDATIONS_CHANNEL, FLUSH_ALL)  # and every API process's local copies
        return dropped

    # Both raise when Redis is unreachable: the micro-batch then rolls back (or, after its commit, is
    # replayed as duplicates that announce their batches again) and is retried, so consumption pauses
    # and no offset passes a stale cache entry.
    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        if changes:
            await self._run_invalidation(changes, hold=True)

    async def batches_changed(self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED) -> None:
        if changes or settled:
            await self._run_invalidation(changes, hold=False, settled=settled)

    async def _run_invalidation(
        self, changes: Sequence[BatchChange], hold: bool, settled: SettledEvents = NOTHING_SETTLED
    ) -> None:
        affected = list(
            dict.fromkeys([batch_key(c.batch_id) for c in changes] + [user_key(u) for c in changes for u in c.user_ids])
        )
        versions: dict[str, int] = {}
        for change in changes:
            versions[change.batch_id] = max(change.version, versions.get(change.batch_id, 0))
        keys = [k for key in affected for k in (key, _generation_key(key), _hold_key(key))]
        keys += [_fence_key(batch_id) for batch_id in versions] + [essays_key(batch_id) for batch_id in versions]
        notices = [] if hold else [change_notice(c) for c in changes]
        mode = "hold" if hold else "release"
        head: list[EncodableT] = [
            mode,
            self._token,
            HOLD_SECONDS * 1000,
            self._ttl * 2,
            FENCE_SECONDS,
            len(affected),
            len(versions),
        ]
        announcement = "\n".join(versions)
        events = settled_notice(settled) if settled else ""
        await self._invalidate(keys=keys, args=[*head, *versions.values(), announcement, events, *notices])


def change_notice(change: BatchChange) -> str:
    return json.dumps({"batch_id": change.batch_id, "version": change.version, "user_ids": sorted(change.user_ids)})


def settled_notice(settled: SettledEvents) -> str:
    return json.dumps({"applied": [str(i) for i in settled.applied], "parked": [str(i) for i in settled.parked]})


async def _pages(keys: AsyncIterator[bytes], size: int = 500) -> AsyncIterator[list[bytes]]:
    page: list[bytes] = []
    async for key in keys:
        page.append(key)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page
