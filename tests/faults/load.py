"""The load driver: whole batch lifecycles published at a steady rate, bounded in events and time, with
random ids per run. Only events the broker acknowledged count as published."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from result_aggregator_service.tests.scenarios import lifecycle

TICK_SECONDS = 0.05
ESSAYS_PER_BATCH = 3


@dataclass(frozen=True)
class Published:
    event_id: str
    batch_id: str
    at: float  # time.monotonic() of the broker's acknowledgement


@dataclass
class LoadDriver:
    producer: AIOKafkaProducer
    rate: float
    max_events: int
    max_seconds: float
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    published: list[Published] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    send_failures: int = 0
    _pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return f"fault-user-{self.run_id}"

    async def run(self) -> None:
        """Publish until `max_events` are acknowledged or `max_seconds` have passed."""
        events, started = self._lifecycles(), time.monotonic()
        while len(self.published) < self.max_events and time.monotonic() - started < self.max_seconds:
            due = min(int((time.monotonic() - started) * self.rate) + 1, self.max_events) - len(self.published)
            while len(self._pending) < due:
                self._pending.append(next(events))
            self._pending[:due] = await self._send(self._pending[:due])
            await asyncio.sleep(TICK_SECONDS)

    async def publish_extra(self, events: list[dict[str, Any]], within: float = 60) -> None:
        """Events a scenario adds itself, tracked and verified like the load's."""
        deadline = time.monotonic() + within
        while events := await self._send(events):
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker did not acknowledge {len(events)} events within {within:.0f}s")
            await asyncio.sleep(TICK_SECONDS)

    def recent_batch_ids(self, count: int) -> list[str]:
        return self.batch_ids[-count:]

    def _lifecycles(self) -> Iterator[dict[str, Any]]:
        while True:
            batch_id = f"fault-{self.run_id}-{uuid.uuid4()}"
            self.batch_ids.append(batch_id)
            yield from lifecycle(batch_id, [f"{batch_id}-e{n}" for n in range(ESSAYS_PER_BATCH)], self.user_id)

    async def _send(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send `events`; returns those the broker did not acknowledge (to be sent again)."""
        results = await asyncio.gather(*(self._send_one(event) for event in events), return_exceptions=True)
        now, failed = time.monotonic(), []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(event)
            else:
                self.published.append(Published(event["event_id"], _batch_id(event), now))
        self.send_failures += len(failed)
        return failed

    async def _send_one(self, event: dict[str, Any]) -> None:
        sent = await self.producer.send(event["event_type"], json.dumps(event).encode(), key=_batch_id(event).encode())
        await sent


def _batch_id(event: dict[str, Any]) -> str:
    return str(event["data"].get("batch_id") or event["data"]["entity_id"])
