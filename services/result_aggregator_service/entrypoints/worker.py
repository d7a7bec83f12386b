"""Worker role: one faust agent folds every subscribed topic into the read model, a micro-batch at a time.

Run: `python -m result_aggregator_service.entrypoints.worker`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from time import perf_counter
from typing import Any

import faust
import structlog
from dishka import AsyncContainer
from faust.types import EventT
from prometheus_client import start_http_server

from huleedu_service_libs.kafka import create_faust_app
from huleedu_service_libs.logging import configure_logging
from huleedu_service_libs.retry import Backoff, retry_forever
from result_aggregator_service.adapters.transient import is_transient
from result_aggregator_service.config import Settings
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import IngestReport, park_unprocessable, process_batch
from result_aggregator_service.service_layer.ports import ChangeSink, RawRecord, SeenEventHints, UnitOfWork

log = structlog.get_logger(__name__)


def create_worker(settings: Settings, container: AsyncContainer) -> faust.App:
    app = create_faust_app(
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
        session_timeout_seconds=settings.kafka_session_timeout_seconds,
        rebalance_timeout_seconds=settings.kafka_rebalance_timeout_seconds,
    )
    subscribed_topic = app.topic(*settings.subscribed_topics)

    # concurrency=1: with more, faust can commit an offset past an event still in flight
    @app.agent(subscribed_topic, concurrency=1, name="fold_results")
    async def fold_results(stream: faust.StreamT[Any]) -> AsyncIterator[None]:
        take = stream.noack_take  # type: ignore[attr-defined]  # missing from faust's StreamT
        batches = take(settings.micro_batch_max_events, within=settings.micro_batch_max_wait_seconds)
        async for events in batches:
            await ingest_until_applied(container, [_raw_record(event) for event in events])
            for event in events:  # only now may faust commit these offsets
                await stream.ack(event)
            await _observe_lag(app, events, await container.get(ServiceMetrics))
            yield None

    @app.task  # type: ignore[untyped-decorator]
    async def serve_metrics() -> None:
        registry = (await container.get(ServiceMetrics)).registry
        start_http_server(settings.worker_metrics_port, settings.http_host, registry=registry)

    return app


async def ingest_until_applied(container: AsyncContainer, records: Sequence[RawRecord]) -> None:
    """Apply a micro-batch, retrying transient failures for as long as they last; never raises for bad
    data: a micro-batch that fails otherwise is retried record by record, and a record that still
    fails is parked. (An agent that raised would have its events acked and skipped by faust.)"""
    metrics = await container.get(ServiceMetrics)
    backoff = await container.get(Backoff)

    async def ingest(batch: Sequence[RawRecord]) -> None:
        started = perf_counter()
        retried = functools.partial(metrics.observe_retry, batch)
        report = await retry_forever(lambda: _process(container, batch), is_transient, backoff, log, retried)
        metrics.observe_ingest(report, len(batch), perf_counter() - started)

    try:
        await ingest(records)
    except Exception:
        log.exception("micro_batch_failed_retrying_one_by_one", size=len(records))
        for record in records:
            try:
                await ingest([record])
            except Exception as error:
                log.exception("record_parked_internal", topic=record.topic, offset=record.offset)
                park = functools.partial(_park, container, record, error)
                retried = functools.partial(metrics.observe_retry, [record])
                # whatever keeps it from being parked, it is retried: the record is never skipped
                report = await retry_forever(park, lambda _: True, backoff, log, retried)
                metrics.observe_ingest(report, 1, 0.0)


async def _process(container: AsyncContainer, records: Sequence[RawRecord]) -> IngestReport:
    async with container() as request:
        return await process_batch(
            records, await request.get(UnitOfWork), await request.get(SeenEventHints), await request.get(ChangeSink)
        )


async def _park(container: AsyncContainer, record: RawRecord, error: BaseException) -> IngestReport:
    async with container() as request:
        return await park_unprocessable(record, error, await request.get(UnitOfWork))


def _raw_record(event: EventT[Any]) -> RawRecord:
    message = event.message
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value if message.value is not None else b"",
        headers=_headers(message),
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )


def _headers(message: Any) -> list[tuple[str, bytes]]:
    """Header values as bytes; Kafka allows a header without a value (None), kept as b""."""
    headers = message.headers or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(key, value.encode() if isinstance(value, str) else value or b"") for key, value in pairs]


async def _observe_lag(app: faust.App, events: Sequence[EventT[Any]], metrics: ServiceMetrics) -> None:
    """Records behind the high watermark, for the partitions still assigned (a rebalance may have moved
    some while the micro-batch was applied). Metrics never stop consumption."""
    try:
        assigned = app.consumer.assignment()
        last_offsets = {event.message.tp: event.message.offset for event in events}
        for tp, offset in last_offsets.items():
            highwater = app.consumer.highwater(tp) if tp in assigned else None
            if highwater is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(highwater - offset - 1, 0))
    except Exception:
        log.warning("consumer_lag_unavailable", exc_info=True)


def main() -> None:
    settings = Settings()
    log_config = configure_logging("result_aggregator_worker", settings.log_level, settings.log_format)
    app = create_worker(settings, make_container(settings))
    worker = faust.Worker(app, loglevel=settings.log_level, logging_config=log_config, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
