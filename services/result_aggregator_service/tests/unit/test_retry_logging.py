"""A transient failure is logged when the dependency goes and when it comes back, not at every attempt."""

from __future__ import annotations

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
