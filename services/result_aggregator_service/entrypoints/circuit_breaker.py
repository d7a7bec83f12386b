"""A circuit breaker on the API's database path: while PostgreSQL is down, answer 503 at once instead of
letting every request wait out a connection attempt.

closed ──(N consecutive transient failures)──► open ──(cool-down over)──► half-open: one probe goes
   ▲                                             ▲                            │
   └──────────────── the probe succeeds ─────────┼────────────────────────────┤
                                                 └──── the probe fails ───────┘

`CircuitBreaker` is the pure state machine (time is passed in); `DatabaseCircuit` wraps a database call
with it; `GuardedReadModel` runs every read-model query (what a cache miss asks) under it. Only transient
failures (`adapters.transient.is_transient`: unreachable, refused, timed out) count; a successful call
closes the circuit; other errors (ours) neither count nor close it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import structlog
from dishka import Provider, Scope, decorate, provide
from prometheus_client import Gauge
from werkzeug.exceptions import ServiceUnavailable

from common_core.enums import BatchStatus
from result_aggregator_service.adapters.transient import is_transient
from result_aggregator_service.api_models import BatchStatusResponse, EssayDetailResponse, UserBatchesResponse
from result_aggregator_service.config import Settings
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.read_service import EventOutcome, ReadModel

log = structlog.get_logger(__name__)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int
    cool_down_seconds: float
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def admit(self, now: float) -> float | None:
        """None when a call may go ahead; else the seconds after which to try again."""
        if self.state is CircuitState.OPEN:
            remaining = self.opened_at + self.cool_down_seconds - now
            if remaining > 0:
                return remaining
            self.state = CircuitState.HALF_OPEN
        if self.state is CircuitState.HALF_OPEN:
            if self.probing:  # one probe at a time; the others wait for its verdict
                return self.cool_down_seconds
            self.probing = True
        return None

    def succeeded(self) -> None:
        self.state, self.consecutive_failures, self.probing = CircuitState.CLOSED, 0, False

    def failed(self, now: float, probe: bool = False) -> None:
        """A call failed to reach the database; `probe`: it was the half-open probe."""
        self.consecutive_failures += 1
        if probe or (self.state is CircuitState.CLOSED and self.consecutive_failures >= self.failure_threshold):
            self.state, self.opened_at = CircuitState.OPEN, now
        if probe:
            self.probing = False

    def released(self, probe: bool = False) -> None:
        """A call ended without a verdict on the database (cancelled, or a bug of ours)."""
        if probe:
            self.probing = False


class CircuitOpen(ServiceUnavailable):
    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(
            "the read model is unavailable (circuit open)", retry_after=max(1, math.ceil(retry_after_seconds))
        )


class DatabaseCircuit:
    def __init__(
        self,
        breaker: CircuitBreaker,
        on_change: Callable[[CircuitState], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breaker = breaker
        self._on_change = on_change
        self._clock = clock
        on_change(breaker.state)

    @property
    def state(self) -> CircuitState:
        return self._breaker.state

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Around one database call: raises CircuitOpen at once while the circuit is open."""
        before = self._breaker.state
        wait = self._breaker.admit(self._clock())
        self._announce(before)
        if wait is not None:
            raise CircuitOpen(wait)
        before = self._breaker.state
        probe = before is CircuitState.HALF_OPEN  # admitted while half-open: this call is the probe
        try:
            yield
        except Exception as error:
            if is_transient(error):
                self._breaker.failed(self._clock(), probe)
            else:
                self._breaker.released(probe)
            raise
        except BaseException:  # cancelled: no verdict
            self._breaker.released(probe)
            raise
        else:
            self._breaker.succeeded()
        finally:
            self._announce(before)

    def _announce(self, before: CircuitState) -> None:
        if self._breaker.state is not before:
            log.warning("database_circuit_changed", state=self._breaker.state.value, previous=before.value)
            self._on_change(self._breaker.state)


def shown_in(gauge: Gauge) -> Callable[[CircuitState], None]:
    """Keep a `state`-labelled gauge at 1 for the current state and 0 for the others."""

    def show(current: CircuitState) -> None:
        for state in CircuitState:
            gauge.labels(state.value).set(1 if state is current else 0)

    return show


class GuardedReadModel:
    """A `ReadModel` whose every query runs under the circuit."""

    def __init__(self, model: ReadModel, circuit: DatabaseCircuit) -> None:
        self._model = model
        self._circuit = circuit

    async def batch_status(self, batch_id: str) -> tuple[BatchStatusResponse, int] | None:
        async with self._circuit.guard():
            return await self._model.batch_status(batch_id)

    async def essay(self, batch_id: str, essay_id: str) -> tuple[EssayDetailResponse, int] | None:
        async with self._circuit.guard():
            return await self._model.essay(batch_id, essay_id)

    async def user_batches(
        self, user_id: str, limit: int, offset: int, status: BatchStatus | None
    ) -> UserBatchesResponse:
        async with self._circuit.guard():
            return await self._model.user_batches(user_id, limit, offset, status)

    async def event_outcome(self, event_id: UUID) -> EventOutcome | None:
        async with self._circuit.guard():
            return await self._model.event_outcome(event_id)


class DatabaseCircuitProvider(Provider):
    """The API's one breaker (per process), around the read model's queries."""

    @provide(scope=Scope.APP)
    def database_circuit(self, settings: Settings, metrics: ServiceMetrics) -> DatabaseCircuit:
        breaker = CircuitBreaker(
            settings.database_circuit_failure_threshold, settings.database_circuit_cool_down_seconds
        )
        return DatabaseCircuit(breaker, on_change=shown_in(metrics.database_circuit))

    @decorate
    def guarded_read_model(self, model: ReadModel, circuit: DatabaseCircuit) -> ReadModel:
        return GuardedReadModel(model, circuit)
