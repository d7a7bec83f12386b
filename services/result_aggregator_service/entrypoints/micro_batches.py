"""Applying one micro-batch whatever happens: transient failures pause and retry, anything else is
narrowed down to the record that causes it by halving (a bad record in 2,000 costs about 22 transactions,
not 2,000), and that record is parked. Never raises for bad data (the caller would otherwise commit
offsets past records that were neither applied nor parked)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter

import structlog
from dishka import AsyncContainer

from huleedu_service_libs.retry import Backoff, retry_forever
from huleedu_service_libs.spans import batch_span
from result_aggregator_service.adapters.transient import is_transient
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.service_layer.ingest import (
    DecodedRecords,
    IngestReport,
    park_unprocessable,
    process_batch,
)
from result_aggregator_service.service_layer.ports import ChangeSink, ParkReason, RawRecord, SeenEventHints, UnitOfWork

log = structlog.get_logger(__name__)


async def ingest_until_applied(container: AsyncContainer, batch: Sequence[RawRecord] | DecodedRecords) -> None:
    records = batch.records if isinstance(batch, DecodedRecords) else batch
    metrics = await container.get(ServiceMetrics)
    backoff = await container.get(Backoff)

    async def until_done(operation: Callable[[], Awaitable[IngestReport]], batch: Sequence[RawRecord]) -> None:
        started = perf_counter()
        retried = functools.partial(metrics.observe_retry, batch)
        report = await retry_forever(operation, is_transient, backoff, log, retried)
        metrics.observe_ingest(report, len(batch), perf_counter() - started)

    async def apply(part: Sequence[RawRecord] | DecodedRecords, records: Sequence[RawRecord]) -> None:
        try:
            await until_done(lambda: _process(container, part), records)
            return
        except Exception as error:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise  # stopping after the grace period: the micro-batch rolls back, it is not bad data
            if len(records) == 1:
                record = records[0]
                log.exception(
                    "record_parked_internal", topic=record.topic, partition=record.partition, offset=record.offset
                )
                await _park_whatever_happens(container, record, error, until_done)
                return
            log.exception("micro_batch_failed_splitting", size=len(records))
        # Each half commits on its own; the fold does not depend on order and the claims drop repeats.
        middle = len(records) // 2
        for half in (records[:middle], records[middle:]):
            await apply(half, half)

    await apply(batch, records)


async def _park_whatever_happens(
    container: AsyncContainer,
    record: RawRecord,
    error: Exception,
    until_done: Callable[[Callable[[], Awaitable[IngestReport]], Sequence[RawRecord]], Awaitable[None]],
) -> None:
    """Park as `internal`; if even that is refused for a reason that is not transient (what the database
    cannot store), keep the bare record as `unstorable`, which needs nothing but its bytes."""
    try:
        await until_done(lambda: _park(container, record, ParkReason.INTERNAL, error, minimal=False), [record])
    except Exception as refused:
        log.exception("record_parked_unstorable", topic=record.topic, partition=record.partition, offset=record.offset)
        cause = RuntimeError(f"{type(error).__name__}: {error}; parking refused: {type(refused).__name__}: {refused}")
        await until_done(lambda: _park(container, record, ParkReason.UNSTORABLE, cause, minimal=True), [record])


async def _process(container: AsyncContainer, batch: Sequence[RawRecord] | DecodedRecords) -> IngestReport:
    records = batch.records if isinstance(batch, DecodedRecords) else batch
    with batch_span("ras micro-batch", len(records), ((r.value, r.headers) for r in records)):
        async with container() as request:
            return await process_batch(
                batch, await request.get(UnitOfWork), await request.get(SeenEventHints), await request.get(ChangeSink)
            )


async def _park(
    container: AsyncContainer, record: RawRecord, reason: ParkReason, error: BaseException, *, minimal: bool
) -> IngestReport:
    async with container() as request:
        return await park_unprocessable(record, reason, error, await request.get(UnitOfWork), minimal=minimal)
