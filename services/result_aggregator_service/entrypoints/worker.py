"""Worker role: a Kafka consumer group member that folds every subscribed topic into the read model.

One loop, one micro-batch at a time: take what has arrived, apply it in one transaction (retrying
transient failures, parking what cannot be applied), and only then commit its offsets. Beside it run
the lag observer, the claims' retention and the outbox relay (entrypoints/outbox_relay.py).

Run: `python -m result_aggregator_service.entrypoints.worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from datetime import timedelta

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from dishka import AsyncContainer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huleedu_service_libs.logging import configure_logging
from huleedu_service_libs.tracing import configure_tracing
from result_aggregator_service.adapters.kafka_source import KafkaRecordSource
from result_aggregator_service.adapters.retention import prune_processed_events
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints import worker_http
from result_aggregator_service.entrypoints.micro_batches import ingest_until_applied
from result_aggregator_service.entrypoints.outbox_relay import OutboxRelay
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.providers import make_container
from result_aggregator_service.service_layer.ingest import DecodedRecords, decode_and_ask_hints, topped_up
from result_aggregator_service.service_layer.ports import SeenEventHints

log = structlog.get_logger(__name__)
_IDLE_WAIT_SECONDS = 1.0  # how long one poll waits when nothing arrives (the loop then polls again)
# Every micro-batch keeps tens of thousands of objects alive until its commit (decoded events, the
# batches it folds), so nearly all of them outlive two young collections; with the default thresholds
# (700, 10, 10) a full collection, which walks the whole heap (the facts cache included), then ran every
# few micro-batches and its cost grew with the cache: a quarter of the time of a 100,000-event backlog.
# A generation-1 collection walks what a micro-batch still holds (38 ms under a backlog) and frees
# little: the micro-batch's objects go by reference counting once it commits. Every hundredth young
# collection instead of every tenth: 2 of them in a 100,000-event drain instead of 20 (timed with gc
# callbacks: all collections there 1.0 s instead of 1.6 s; no gain shows in that drain's CPU time,
# which varies more than that from run to run).
_GC_THRESHOLDS = (10_000, 100, 10)


def record_source(settings: Settings, metrics: ServiceMetrics) -> KafkaRecordSource:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        enable_auto_commit=False,  # offsets move only after the transaction and the cache invalidation
        auto_offset_reset="earliest",
        max_poll_records=settings.micro_batch_max_events,
        # how long the broker holds a fetch with no data: a record for a partition left out of the fetch
        # in flight (it still had buffered records) waits up to this long, whatever the load
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
        rebalance_timeout_ms=int(settings.kafka_rebalance_timeout_seconds * 1000),
        heartbeat_interval_ms=int(max(settings.kafka_session_timeout_seconds / 10, 0.5) * 1000),
    )

    assignments = 0

    def assigned(partitions: set[TopicPartition]) -> None:
        nonlocal assignments
        assignments += 1  # run.sh waits for the first line to print its banner
        metrics.last_assignment.set_to_current_time()
        event = "worker_ready" if assignments == 1 else "partitions_reassigned"
        log.info(
            event, group=settings.consumer_group, partitions=len(partitions), topics=len({p.topic for p in partitions})
        )

    def revoked(partitions: set[TopicPartition]) -> None:
        for tp in partitions:  # another member reports these now
            with contextlib.suppress(KeyError):
                metrics.consumer_lag.remove(tp.topic, str(tp.partition))

    return KafkaRecordSource(consumer, settings.subscribed_topics, on_assigned=assigned, on_revoked=revoked)


async def consume(
    settings: Settings, container: AsyncContainer, source: KafkaRecordSource, stopping: asyncio.Event
) -> None:
    """Apply micro-batches until asked to stop; the micro-batch in flight finishes first (or, cancelled
    after the grace period, rolls back with its offsets uncommitted). The next micro-batch is fetched,
    decoded and looked up in the seen-event hints while the current one waits on the database, and the
    current one's offsets go to the broker while the next one is applied: each only after its own
    commit, and one at a time (the next micro-batch's commit waits for it). When its turn comes, a
    micro-batch takes along what arrived while it waited (up to the cap): that would otherwise wait one
    micro-batch more."""
    hints = await container.get(SeenEventHints)

    async def fetched_and_decoded() -> DecodedRecords:
        records = await source.next_batch(settings.micro_batch_max_events, _IDLE_WAIT_SECONDS)
        return await decode_and_ask_hints(records, hints)

    ahead = asyncio.create_task(fetched_and_decoded())
    committing: asyncio.Task[None] | None = None
    try:
        while not stopping.is_set():
            batch = await ahead
            batch = topped_up(batch, await source.arrived(settings.micro_batch_max_events - len(batch.records)))
            ahead = asyncio.create_task(fetched_and_decoded())
            if batch.records:
                await ingest_until_applied(container, batch)
                if committing is not None:  # one commit in flight: a stuck coordinator holds consumption
                    await committing
                committing = asyncio.create_task(source.commit(batch.records))
    finally:
        ahead.cancel()
        if committing is not None:  # what was applied is let go, also when cancelled after the grace period
            with contextlib.suppress(Exception):
                await asyncio.wait_for(committing, settings.shutdown_grace_seconds)


async def observe_lag(source: KafkaRecordSource, metrics: ServiceMetrics, every_seconds: float) -> None:
    """Lag from the broker's end offsets, also while consumption is paused; metrics never stop it."""
    while True:
        try:
            for tp, lag in (await source.lag()).items():
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        except Exception as error:
            log.warning("consumer_lag_unavailable", error=repr(error))
        await asyncio.sleep(every_seconds)


async def prune_claims(settings: Settings, container: AsyncContainer) -> None:
    """Claims older than the retention horizon go, a small batch at a time; retention never stops the worker."""
    horizon = timedelta(days=settings.processed_events_retention_days)
    sessions = await container.get(async_sessionmaker[AsyncSession])
    while True:
        try:
            pruned = await prune_processed_events(sessions, horizon, settings.processed_events_prune_batch)
            if pruned:
                log.info("processed_events_pruned", rows=pruned, horizon_days=settings.processed_events_retention_days)
        except Exception as error:
            log.warning("processed_events_prune_failed", error=repr(error))
        await asyncio.sleep(settings.processed_events_prune_interval_seconds)


async def run(settings: Settings, container: AsyncContainer) -> None:
    metrics = await container.get(ServiceMetrics)
    gc.set_threshold(*_GC_THRESHOLDS)
    gc.freeze()  # what start-up built lives as long as the process: no full collection walks it again
    worker_http.serve(metrics, settings.http_host, settings.worker_metrics_port, settings.worker_stall_seconds)
    source = record_source(settings, metrics)
    await source.start()
    consuming = asyncio.current_task()
    assert consuming is not None
    stopping, loop = asyncio.Event(), asyncio.get_running_loop()
    deadline: list[asyncio.TimerHandle] = []

    def stop() -> None:  # a micro-batch stuck on an unavailable dependency is cancelled after the grace
        stopping.set()
        deadline.append(loop.call_later(settings.shutdown_grace_seconds, consuming.cancel))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    lag = asyncio.create_task(observe_lag(source, metrics, settings.lag_interval_seconds))
    retention = asyncio.create_task(prune_claims(settings, container))
    relay = asyncio.create_task(OutboxRelay(settings, metrics).run()) if settings.outbox_relay_enabled else None
    try:
        await consume(settings, container, source, stopping)
    except asyncio.CancelledError:
        log.info("worker_cancelled")
    finally:
        log.info("worker_stopping")
        for handle in deadline:
            handle.cancel()
        lag.cancel()
        retention.cancel()
        if relay is not None:  # its producer flushes (bounded); what does not go out stays in the outbox
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        await source.stop()
        await container.close()


def main() -> None:
    settings = Settings()
    configure_logging("result_aggregator_worker", settings.log_level, settings.log_format)
    configure_tracing("result_aggregator_worker", settings.otlp_endpoint)
    # No ping at checkout: outside autocommit asyncpg's is BEGIN, ping, ROLLBACK before every micro-batch,
    # and the worker retries a failed transaction anyway (a connection lost with a server restart is a
    # transient error, and the pool then drops every connection older than the failure).
    asyncio.run(run(settings, make_container(settings, ping_at_checkout=False)))


if __name__ == "__main__":
    main()
