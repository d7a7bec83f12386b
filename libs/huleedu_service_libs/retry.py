"""Capped exponential backoff with full jitter, for transient failures (database or Redis unavailable)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 0.1
    max_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based): up to initial * 2^(attempt-1), capped."""
        ceiling = min(self.max_seconds, self.initial_seconds * 2 ** min(attempt - 1, 30))
        return random.uniform(ceiling / 2, ceiling)


async def retry_forever(
    operation: Callable[[], Awaitable[T]],
    is_transient: Callable[[BaseException], bool],
    backoff: Backoff,
    log: Any,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Await `operation` until it succeeds; transient failures wait and retry, anything else is raised.

    It never gives up on a transient failure: the caller pauses instead of skipping work. Cancellation
    (shutdown) ends the wait at once. It logs the state changes, not every attempt: `dependency_unavailable`
    at the first failure (a warning), `dependency_recovered` once it succeeds again; the attempts in
    between are debug lines.
    """
    attempt, started = 0, time.monotonic()
    while True:
        try:
            result = await operation()
        except Exception as error:
            task = asyncio.current_task()
            if not is_transient(error) or (task is not None and task.cancelling()):
                raise  # a client library may turn our cancellation into an error of its own: never retry that
            attempt += 1
            delay = backoff.delay(attempt)
            report = log.warning if attempt == 1 else log.debug
            event = "dependency_unavailable" if attempt == 1 else "dependency_still_unavailable"
            report(event, attempt=attempt, delay_seconds=round(delay, 3), error=repr(error))
            if on_retry is not None:
                on_retry(error)
            await asyncio.sleep(delay)
            continue
        if attempt:
            log.info("dependency_recovered", attempts=attempt, seconds=round(time.monotonic() - started, 1))
        return result
