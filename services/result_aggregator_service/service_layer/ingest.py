"""A micro-batch from the wire to the read model: decode, claim, route, commit once, then tell the caches.

The caller lets the offsets go only after `process_batch` returns, so everything it wrote is committed
and every cached response it made stale is gone by then; cached responses are held off across the
commit itself, so a read that follows the commit cannot see the state before it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from pydantic import ValidationError

from common_core.envelope import EventEnvelope
from huleedu_service_libs.spans import event_span
from result_aggregator_service.domain.rules import RejectedFact
from result_aggregator_service.service_layer.decoding import decode_event
from result_aggregator_service.service_layer.handlers import HANDLERS_BY_TOPIC, batch_id_of
from result_aggregator_service.service_layer.ports import (
    BatchChange,
    ChangeSink,
    ParkReason,
    RawRecord,
    SeenEventHints,
    SettledEvents,
    UnitOfWork,
)
from result_aggregator_service.service_layer.schema_versions import UnsupportedSchemaVersion


@dataclass(frozen=True)
class Parked:
    record: RawRecord
    reason: ParkReason
    error: str
    event_id: UUID | None = None


@dataclass
class IngestReport:
    """What happened to each record, for metrics and logs."""

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, outcome) -> count
    parked: list[Parked] = field(default_factory=list)
    applied_event_times: list[tuple[str, datetime]] = field(default_factory=list)  # (topic, event_timestamp)
    changes: list[BatchChange] = field(default_factory=list)


Decoded = tuple[RawRecord, EventEnvelope[Any]]
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DecodedRecords:
    """A micro-batch after decoding, which needs no I/O: its events (the first of each id), and what
    decoding alone decided (the records it parked, duplicates within the micro-batch). The worker decodes
    the next micro-batch while the current one waits on the database."""

    records: Sequence[RawRecord]
    events: list[Decoded]
    parked: list[Parked]
    duplicates: Counter[str]  # topic -> events seen twice in this micro-batch
    hinted: frozenset[UUID] | None = None  # the seen-event hints' answer, if asked already


def decode_records(records: Sequence[RawRecord], held: Sequence[Decoded] = ()) -> DecodedRecords:
    """`records` decoded; `events` start with `held` (decoded before), and an event either holds already
    counts as a duplicate."""
    report = IngestReport()
    events = _decode(records, report, held)
    duplicates = Counter({topic: n for (topic, outcome), n in report.outcomes.items() if outcome == "duplicate"})
    return DecodedRecords(records, events, report.parked, duplicates)


def topped_up(decoding: DecodedRecords, arrived: Sequence[RawRecord]) -> DecodedRecords:
    """`decoding` with the records that arrived while it waited for its turn: they go now, not one
    micro-batch later. Not asked of the hints (a shortcut only); an event it holds already is a duplicate."""
    if not arrived:
        return decoding
    more = decode_records(arrived, held=decoding.events)
    return DecodedRecords(
        [*decoding.records, *arrived],
        more.events,
        [*decoding.parked, *more.parked],
        decoding.duplicates + more.duplicates,
        decoding.hinted,
    )


async def decode_and_ask_hints(records: Sequence[RawRecord], hints: SeenEventHints) -> DecodedRecords:
    """Decoded, and the hints asked which events were applied before: ahead of the micro-batch's turn is
    early enough, since a hint is only a shortcut (an event applied in between is dropped by its claim)."""
    decoding = decode_records(records)
    hinted = await hints.seen([envelope.event_id for _, envelope in decoding.events]) if decoding.events else set()
    return replace(decoding, hinted=frozenset(hinted))


async def process_batch(
    batch: Sequence[RawRecord] | DecodedRecords, uow: UnitOfWork, hints: SeenEventHints, changes: ChangeSink
) -> IngestReport:
    decoding = batch if isinstance(batch, DecodedRecords) else decode_records(batch)
    report = IngestReport(parked=list(decoding.parked))
    for parked in decoding.parked:
        report.outcomes[parked.record.topic, "parked"] += 1
    for topic, count in decoding.duplicates.items():
        report.outcomes[topic, "duplicate"] += count
    decoded = decoding.events
    hinted = decoding.hinted if decoding.hinted is not None else await hints.seen([e.event_id for _, e in decoded])
    async with uow:
        confirmed = await uow.applied(hinted) if hinted else set()
        fresh = [(record, envelope) for record, envelope in decoded if envelope.event_id not in confirmed]
        claimed = await uow.claim([(envelope.event_id, record) for record, envelope in fresh])
        to_apply = [(record, envelope) for record, envelope in fresh if envelope.event_id in claimed]
        duplicates = [(record, envelope) for record, envelope in decoded if envelope.event_id not in claimed]
        await uow.batches.load({batch_id_of(envelope.data) for _, envelope in to_apply})
        for record, envelope in to_apply:
            await _route(record, envelope, uow, report)
        for parked in report.parked:
            await uow.parked.park(parked.record, parked.reason, parked.error, parked.event_id)
        report.changes = await uow.flush()
        # Nothing cached may be refilled from the state this commit replaces, nor survive it.
        await changes.batches_changing(report.changes)
        await uow.commit()
        # A redelivered event may follow a crash between commit and invalidation: announce its batch again.
        redelivered = {batch_id_of(envelope.data) for _, envelope in duplicates} - {c.batch_id for c in report.changes}
        report.changes += await uow.batches.current(redelivered)
    for record, _ in duplicates:
        report.outcomes[record.topic, "duplicate"] += 1
    applied_ids = [envelope.event_id for _, envelope in decoded]
    parked_ids = {parked.event_id for parked in report.parked if parked.event_id is not None}
    settled = SettledEvents([i for i in applied_ids if i not in parked_ids], list(parked_ids))
    await asyncio.gather(changes.batches_changed(report.changes, settled), hints.remember(applied_ids))  # independent
    return report


async def park_unprocessable(
    record: RawRecord, reason: ParkReason, error: BaseException, uow: UnitOfWork, *, minimal: bool = False
) -> IngestReport:
    """Keep a record whose processing fails for a reason retrying will not cure; `minimal` keeps only
    where it came from and its value's bytes (for a record whose key or headers cannot be stored)."""
    if minimal:
        record = replace(record, key=None, headers=())
    report = IngestReport()
    _park(report, Parked(record, reason, f"{type(error).__name__}: {error}"))
    async with uow:
        await uow.parked.park(record, reason, report.parked[0].error)
        await uow.commit()
    return report


def _decode(records: Sequence[RawRecord], report: IngestReport, held: Sequence[Decoded] = ()) -> list[Decoded]:
    decoded: dict[UUID, Decoded] = {envelope.event_id: (record, envelope) for record, envelope in held}
    for record in records:
        if record.unreadable is not None:
            _park(report, Parked(record, ParkReason.UNREADABLE, record.unreadable))
            continue
        try:
            envelope = decode_event(record.topic, record.value)
        except KeyError:
            _park(report, Parked(record, ParkReason.UNKNOWN_TOPIC, f"no handler for topic {record.topic!r}"))
            continue
        except ValidationError as error:
            undecodable = any(e["type"] == "json_invalid" for e in error.errors())
            reason = ParkReason.UNDECODABLE if undecodable else ParkReason.SCHEMA_INVALID
            _park(report, Parked(record, reason, str(error)))
            continue
        except UnsupportedSchemaVersion as error:
            _park(report, Parked(record, ParkReason.UNSUPPORTED_VERSION, str(error)))
            continue
        if envelope.event_id in decoded:  # the same event twice in one micro-batch
            report.outcomes[record.topic, "duplicate"] += 1
            continue
        decoded[envelope.event_id] = (record, envelope)
    return list(decoded.values())


async def _route(record: RawRecord, envelope: EventEnvelope[Any], uow: UnitOfWork, report: IngestReport) -> None:
    def span_attributes() -> dict[str, str]:
        return {"messaging.message.id": str(envelope.event_id), "correlation_id": str(envelope.correlation_id)}

    with event_span(record.topic, envelope.metadata, record.headers, span_attributes):
        try:
            await HANDLERS_BY_TOPIC[record.topic](envelope, uow)
        except RejectedFact as error:
            _log.warning(
                "event_rejected",
                event_id=str(envelope.event_id),
                correlation_id=str(envelope.correlation_id),
                traceparent=(envelope.metadata or {}).get("traceparent"),
                topic=record.topic,
                reason=str(error),
            )
            _park(report, Parked(record, ParkReason.REJECTED, str(error), envelope.event_id))
            return
    report.outcomes[record.topic, "success"] += 1
    report.applied_event_times.append((record.topic, envelope.event_timestamp))


def _park(report: IngestReport, parked: Parked) -> None:
    record = parked.record
    _log.warning(
        "event_parked", topic=record.topic, partition=record.partition, offset=record.offset, reason=parked.reason
    )
    report.parked.append(parked)
    report.outcomes[parked.record.topic, "parked"] += 1
