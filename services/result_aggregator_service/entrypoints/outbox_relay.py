"""The outbox relay: publishes the outbox to Kafka, one relay at a time across all workers.

A task of every worker process (`entrypoints/worker.py`). Each relay opens its own PostgreSQL session and
tries the advisory lock: the holder publishes, the others stand by and try again every poll interval, so
one of them takes over when the holder's session ends. The holder LISTENs on the outbox channel (the
writer NOTIFYs in the transaction that inserts rows) and polls only as a fallback. Broker and database
failures are retried with capped backoff, never skipped: unpublished rows simply wait in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally

import structlog
from aiokafka.errors import KafkaError

from huleedu_service_libs.retry import Backoff
from result_aggregator_service.adapters.outbox_relay import KafkaEventPublisher, PostgresOutbox
from result_aggregator_service.adapters.transient import is_transient
from result_aggregator_service.config import Settings
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.service_layer.ports import OutboxRow
from result_aggregator_service.service_layer.relay import relay_pending

log = structlog.get_logger(__name__)
_PRODUCER_STOP_SECONDS = 5.0  # flushing a stopping producer: what does not go out stays unmarked
_BACKLOG_EVERY_SECONDS = 1.0  # how often a busy relay counts the backlog for its gauges


class OutboxRelay:
    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self._settings, self._metrics = settings, metrics
        self._backoff = Backoff(settings.retry_initial_seconds, settings.retry_max_seconds)
        self._wake = asyncio.Event()
        self._failures, self._failing_since, self._backlog_read_at = 0, 0.0, 0.0

    async def run(self) -> None:
        """Until cancelled: a session, the lock, publishing. Any failure is counted, logged once and retried."""
        while True:
            try:
                await self._session()
            except Exception as error:
                await self._failed(error)

    async def _session(self) -> None:
        outbox = await PostgresOutbox.connect(self._settings, self._wake.set)
        try:
            while not await outbox.try_lead():
                await self._observe_backlog(outbox, force=True)
                self._recovered()  # standing by on a working session is healthy
                await asyncio.sleep(self._settings.outbox_relay_poll_seconds)
            await outbox.listen()
            self._metrics.outbox_relay_leader.set(1)
            log.info("outbox_relay_leading")
            await self._publish(outbox)
        finally:
            self._metrics.outbox_relay_leader.set(0)
            outbox.close()

    async def _publish(self, outbox: PostgresOutbox) -> None:
        """Publish while the session holds the lock. A broker failure drops the producer and retries with
        the same session (and lock); a database failure ends the session."""
        publisher: KafkaEventPublisher | None = None
        try:
            while True:
                self._wake.clear()  # before the read: a notice during it wakes the next wait at once
                await self._observe_backlog(outbox)
                if publisher is None:
                    publisher = KafkaEventPublisher(self._settings.kafka_bootstrap_servers)
                    try:
                        await publisher.start()
                    except Exception as error:
                        await publisher.stop(_PRODUCER_STOP_SECONDS)
                        publisher = None
                        await self._failed(error)
                        continue
                relayed = await relay_pending(outbox, publisher, self._settings.outbox_relay_batch_size)
                self._count(relayed.published)
                if relayed.error is not None:
                    await publisher.stop(_PRODUCER_STOP_SECONDS)
                    publisher = None
                    await self._failed(relayed.error)
                    continue
                self._recovered()
                if not relayed.more:
                    await self._observe_backlog(outbox, force=True)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._settings.outbox_relay_poll_seconds)
        finally:
            if publisher is not None:
                await publisher.stop(_PRODUCER_STOP_SECONDS)

    async def _observe_backlog(self, outbox: PostgresOutbox, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._backlog_read_at < _BACKLOG_EVERY_SECONDS:
            return
        rows, oldest_seconds = await outbox.backlog()
        self._metrics.outbox_backlog.set(rows)
        self._metrics.outbox_oldest_age.set(oldest_seconds)
        self._backlog_read_at = now

    def _count(self, published: list[OutboxRow]) -> None:
        for topic, count in Tally(row.topic for row in published).items():
            self._metrics.outbox_published.labels(topic).inc(count)

    async def _failed(self, error: Exception) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise error  # a client library turned our cancellation into an error of its own: stop
        self._failures += 1
        dependency = "kafka" if isinstance(error, KafkaError) else "database" if is_transient(error) else "internal"
        self._metrics.outbox_publish_errors.labels(dependency).inc()
        if self._failures == 1:
            self._failing_since = time.monotonic()
            report = log.error if dependency == "internal" else log.warning
            report("outbox_relay_unavailable", dependency=dependency, error=repr(error))
        else:
            log.debug("outbox_relay_still_unavailable", dependency=dependency, error=repr(error))
        await asyncio.sleep(self._backoff.delay(self._failures))

    def _recovered(self) -> None:
        if self._failures:
            seconds = round(time.monotonic() - self._failing_since, 1)
            log.info("outbox_relay_recovered", attempts=self._failures, seconds=seconds)
            self._failures = 0
