"""Which failures pause consumption (retried) and which mark the data as bad (parked)."""

from __future__ import annotations

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from sqlalchemy import exc as sa_exc

from result_aggregator_service.adapters.transient import is_transient


def raised_from(cause: BaseException) -> BaseException:
    try:
        raise sa_exc.DBAPIError("INSERT ...", {}, cause) from cause
    except sa_exc.DBAPIError as error:
        return error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        RedisConnectionError("Error 111 connecting"),
        raised_from(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        raised_from(asyncpg.exceptions.UndefinedTableError('relation "batches" does not exist')),
        raised_from(asyncpg.exceptions.DeadlockDetectedError("deadlock detected")),
        sa_exc.TimeoutError("QueuePool limit reached"),
        ReadOnlyError("You can't write against a read only replica."),
        raised_from(asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction")),
        raised_from(asyncpg.exceptions.DiskFullError("could not extend file")),
        raised_from(asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout")),
        raised_from(asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout")),
        raised_from(asyncpg.exceptions.PostgresIOError("could not read block")),
        raised_from(asyncpg.exceptions.InternalServerError("unexpected chunk number")),
        raised_from(asyncpg.exceptions.IdleInTransactionSessionTimeoutError("idle-in-transaction timeout")),
    ],
    ids=[
        "refused",
        "redis",
        "admin-shutdown",
        "not-migrated",
        "deadlock",
        "pool",
        "redis-replica",
        "pg-standby",
        "disk",
        "statement-timeout",
        "lock-timeout",
        "io-error",
        "XX000",
        "idle-in-transaction-timeout",
    ],
)
def test_an_unavailable_or_unready_dependency_is_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        raised_from(asyncpg.exceptions.StringDataRightTruncationError("value too long for type varchar(100)")),
        raised_from(asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range")),
        ValueError("a bug"),
    ],
    ids=["too-long", "out-of-range", "bug"],
)
def test_an_error_about_the_data_is_not_transient(error: BaseException) -> None:
    assert not is_transient(error)
