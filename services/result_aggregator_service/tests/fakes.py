"""Hand-written stand-ins for unit tests of the service layer (pure logic; integration tests use Redis)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from result_aggregator_service.service_layer.ports import NOTHING_SETTLED, BatchChange, RawRecord, SettledEvents
from result_aggregator_service.tests.contract.sample_envelopes import to_bytes

# random start: tests share one database, where a (topic, partition, offset) is parked once
_offsets = itertools.count(random.randrange(10**12))


def record_of(sample: dict[str, Any], topic: str | None = None, value: bytes | None = None) -> RawRecord:
    """A Kafka record carrying `sample` on its own topic (or `topic`), at a fresh offset."""
    return RawRecord(
        topic=topic or sample["event_type"],
        partition=0,
        offset=next(_offsets),
        key=None,
        value=value if value is not None else to_bytes(sample),
        headers=[("event_id", str(sample.get("event_id", "")).encode())],
    )


class SetSeenEventHints:
    def __init__(self) -> None:
        self.ids: set[UUID] = set()

    async def seen(self, event_ids: Collection[UUID]) -> set[UUID]:
        return self.ids & set(event_ids)

    async def remember(self, event_ids: Collection[UUID]) -> None:
        self.ids |= set(event_ids)


class RecordingChangeSink:
    def __init__(self) -> None:
        self.changing: list[BatchChange] = []
        self.changes: list[BatchChange] = []
        self.settled: list[SettledEvents] = []

    async def batches_changing(self, changes: Sequence[BatchChange]) -> None:
        self.changing.extend(changes)

    async def batches_changed(self, changes: Sequence[BatchChange], settled: SettledEvents = NOTHING_SETTLED) -> None:
        self.changes.extend(changes)
        self.settled.append(settled)
