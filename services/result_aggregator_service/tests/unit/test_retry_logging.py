"""A transient failure is logged when the dependency goes and when it comes back, not at every attempt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from huleedu_service_libs.retry import Backoff, retry_forever


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **_: self.lines.append((level, event))


async def test_an_outage_of_several_attempts_logs_one_warning_and_one_recovery() -> None:
    outcomes: list[Exception | str] = [ConnectionError("down") for _ in range(4)]
    outcomes.append("done")

    async def operation() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    log = RecordingLog()
    result = await retry_forever(operation, lambda e: isinstance(e, ConnectionError), Backoff(0.001, 0.002), log)
    assert result == "done"
    assert [line for line in log.lines if line[0] != "debug"] == [
        ("warning", "dependency_unavailable"),
        ("info", "dependency_recovered"),
    ]


async def test_success_at_once_logs_nothing_and_a_lasting_error_is_raised() -> None:
    log = RecordingLog()

    async def fine() -> int:
        return 1

    async def broken() -> int:
        raise ValueError("bad data")

    assert await retry_forever(fine, lambda _: True, Backoff(), log) == 1
    with pytest.raises(ValueError):
        await retry_forever(broken, lambda e: isinstance(e, ConnectionError), Backoff(), log)
    assert log.lines == []


async def test_an_error_a_client_raises_for_our_own_cancellation_is_not_retried() -> None:
    attempts = 0

    async def operation() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            return "retried after the cancellation"
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # shutdown asks while the client is busy ...
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise ConnectionResetError("connection closed") from None  # ... and the client reports its own error
        return "not cancelled"

    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(ConnectionResetError):
        await retry_forever(operation, lambda _: True, Backoff(0.001, 0.001), RecordingLog())
    task.uncancel()
    assert attempts == 1
