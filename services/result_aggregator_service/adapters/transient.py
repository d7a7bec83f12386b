"""Which failures are transient (a dependency is unavailable or not ready) and worth retrying, pausing
consumption, rather than parking the events as bad input."""

from __future__ import annotations

import asyncio

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy import exc as sa_exc

# PostgreSQL SQLSTATEs (or their classes) that describe the server or the deployment, not the data.
_TRANSIENT_SQLSTATES = (
    "08",  # connection exception
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57P",  # operator intervention: admin or crash shutdown, cannot connect now
    "25006",  # read-only transaction: a failover to a standby
    "25P03",  # idle-in-transaction timeout: the server ended a transaction a frozen client held
    "55P03",  # lock not available (lock_timeout)
    "57014",  # query canceled (statement_timeout)
    "58",  # system error: I/O error, undefined file
    "XX",  # internal error (XX000), data or index corrupted: the server's state, not the event's
    "40001",  # serialization failure
    "40P01",  # deadlock detected
    "42P01",  # undefined table: the database is not migrated yet
    "42703",  # undefined column: a migration is missing
    "42501",  # insufficient privilege
    "28",  # invalid authorization: wrong credentials
    "3D000",  # the database does not exist
)

_TRANSIENT_TYPES = (
    OSError,  # refused or reset connections
    asyncio.TimeoutError,
    asyncpg.InterfaceError,  # "connection is closed" after the server went away
    sa_exc.TimeoutError,  # the connection pool
    # Redis serves only hints (whose errors are swallowed) and cache invalidation, which must succeed:
    # no Redis error, read-only replica and out-of-memory included, says anything about an event.
    RedisError,
)


def is_transient(error: BaseException) -> bool:
    """True when the error, or one it was raised from, says a dependency is unreachable, busy or not ready."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, _TRANSIENT_TYPES):
            return True
        if isinstance(current, asyncpg.PostgresError) and str(current.sqlstate).startswith(_TRANSIENT_SQLSTATES):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
