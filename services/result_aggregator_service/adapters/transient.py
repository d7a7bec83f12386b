"""Which failures are transient (a dependency is unavailable or not ready) and worth retrying, pausing
consumption, rather than parking the events as bad input."""

from __future__ import annotations

import asyncio

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc

_TRANSIENT = (
    OSError,  # refused or reset connections
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # "connection is closed" after the server went away
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    # the environment, not the data: a database not migrated yet, missing grants, wrong credentials
    asyncpg.exceptions.UndefinedTableError,
    asyncpg.exceptions.UndefinedColumnError,
    asyncpg.exceptions.InsufficientPrivilegeError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    sa_exc.TimeoutError,  # the connection pool
    RedisConnectionError,
    RedisTimeoutError,
)


def is_transient(error: BaseException) -> bool:
    """True when the error, or one it was raised from, says a dependency is unreachable or busy."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
