"""The API's database circuit breaker: closed → open after N consecutive connection failures → one
half-open probe after the cool-down → closed again when the probe succeeds."""

from __future__ import annotations

import asyncio

import pytest

from result_aggregator_service.entrypoints.circuit_breaker import (
    CircuitBreaker,
    CircuitOpen,
    CircuitState,
    DatabaseCircuit,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def opened(at: float = 100.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=3, cool_down_seconds=10.0)
    for _ in range(3):
        assert breaker.admit(at) is None
        breaker.failed(at)
    return breaker


def test_it_opens_only_after_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_down_seconds=10.0)
    for _ in range(2):
        breaker.failed(0.0)
    breaker.succeeded()  # a success in between starts the count again
    for _ in range(2):
        breaker.failed(0.0)
    assert breaker.state is CLOSED
    breaker.failed(0.0)
    assert breaker.state is OPEN


def test_while_open_every_call_is_refused_with_the_time_left() -> None:
    breaker = opened(at=100.0)
    assert breaker.admit(104.0) == pytest.approx(6.0)
    assert breaker.admit(109.5) == pytest.approx(0.5)
    assert breaker.state is OPEN


def test_after_the_cool_down_one_probe_goes_and_the_others_wait() -> None:
    breaker = opened(at=100.0)
    assert breaker.admit(110.0) is None
    assert breaker.state is HALF_OPEN
    assert breaker.admit(110.1) == pytest.approx(10.0)


def test_a_successful_probe_closes_the_circuit() -> None:
    breaker = opened(at=100.0)
    breaker.admit(110.0)
    breaker.succeeded()
    assert (breaker.state, breaker.consecutive_failures) == (CLOSED, 0)
    assert breaker.admit(110.1) is None


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    breaker = opened(at=100.0)
    breaker.admit(110.0)
    breaker.failed(110.0, probe=True)
    assert breaker.state is OPEN
    assert breaker.admit(115.0) == pytest.approx(5.0)


def test_a_probe_without_a_verdict_lets_the_next_call_probe() -> None:
    breaker = opened(at=100.0)
    breaker.admit(110.0)
    breaker.released(probe=True)
    assert breaker.admit(110.1) is None
    assert breaker.state is HALF_OPEN


def test_a_late_failure_of_a_call_from_before_does_not_free_the_probes_slot() -> None:
    breaker = opened(at=100.0)
    breaker.admit(110.0)  # the probe is under way
    breaker.failed(110.5)  # a call admitted long before, still closed then, fails now
    assert breaker.state is HALF_OPEN
    assert breaker.admit(110.6) == pytest.approx(10.0)  # still one probe at a time


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_wrapper_counts_connection_failures_and_answers_circuit_open_with_retry_after() -> None:
    clock, seen = Clock(), list[CircuitState]()
    circuit = DatabaseCircuit(CircuitBreaker(2, 5.0), on_change=seen.append, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            async with circuit.guard():
                raise ConnectionRefusedError("database down")
    clock.now = 1.2
    with pytest.raises(CircuitOpen) as refused:
        async with circuit.guard():
            raise AssertionError("the call must not run while the circuit is open")
    assert (refused.value.code, refused.value.retry_after) == (503, 4)
    clock.now = 5.0
    async with circuit.guard():
        pass
    assert seen == [CLOSED, OPEN, HALF_OPEN, CLOSED]


async def test_a_bug_of_ours_or_a_cancelled_call_does_not_count_as_a_database_failure() -> None:
    circuit = DatabaseCircuit(CircuitBreaker(1, 5.0))
    with pytest.raises(ValueError, match="a bug"):
        async with circuit.guard():
            raise ValueError("a bug")
    with pytest.raises(asyncio.CancelledError):
        async with circuit.guard():
            raise asyncio.CancelledError
    assert circuit.state is CLOSED
