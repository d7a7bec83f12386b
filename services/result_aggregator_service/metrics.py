"""The service's one metrics registry and everything it records (worker and API alike)."""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from result_aggregator_service.service_layer.ingest import IngestReport
from result_aggregator_service.service_layer.ports import RawRecord

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_processed = Counter(
            "ras_events_processed_total", "Events by topic and outcome", ["topic", "outcome"], registry=r
        )
        self.parked_events = Counter("ras_parked_events_total", "Parked events", ["topic", "reason"], registry=r)
        self.micro_batch_size = Histogram(
            "ras_micro_batch_size", "Records per micro-batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000), registry=r
        )
        self.micro_batch_duration = Histogram(
            "ras_micro_batch_duration_seconds",
            "Time to fold and commit a micro-batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_to_commit = Histogram(
            "ras_event_to_commit_seconds", "event_timestamp to commit", ["topic"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.consumer_lag = Gauge(
            "ras_consumer_lag", "Records behind the high watermark", ["topic", "partition"], registry=r
        )
        self.transient_failures = Counter(
            "ras_transient_failures_total", "Retried transient failures", ["operation"], registry=r
        )
        self.transient_failures.labels("ingest")  # a zero series from the start: rates read 0, not "no data"
        self.http_requests = Counter(
            "ras_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "ras_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache_lookups = Counter("ras_cache_lookups_total", "API cache lookups", ["route", "result"], registry=r)
        self.facts_cache_lookups = Counter(
            "ras_facts_cache_lookups_total",
            "Batches the worker loaded: hit (its facts cache), miss (read back and decoded), new (nothing stored)",
            ["result"],
            registry=r,
        )
        self.facts_cache_evictions = Counter(
            "ras_facts_cache_evictions_total", "Batches dropped from the worker's full facts cache", registry=r
        )
        self.last_commit = Gauge(
            "ras_last_commit_timestamp_seconds",
            "Unix time of the worker's last committed micro-batch (0: none since start)",
            registry=r,
        )
        self.last_assignment = Gauge(
            "ras_last_assignment_timestamp_seconds",
            "Unix time the worker was last given its partitions, at a rebalance (0: not yet)",
            registry=r,
        )
        self.dependency_up = Gauge(
            "ras_dependency_up",
            "1 when the dependency answered the last health check, else 0",
            ["dependency"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        # the outbox relay (entrypoints/outbox_relay.py); backlog and age as this process's relay last read them
        self.outbox_backlog = Gauge("ras_outbox_backlog_events", "Unpublished outbox rows", registry=r)
        self.outbox_oldest_age = Gauge(
            "ras_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox row", registry=r
        )
        self.outbox_published = Counter(
            "ras_outbox_published_total", "Outbox events the broker acknowledged", ["topic"], registry=r
        )
        self.outbox_publish_errors = Counter(
            "ras_outbox_publish_errors_total", "Failed outbox relay attempts (retried)", ["dependency"], registry=r
        )
        for dependency in ("kafka", "database"):  # zero series from the start
            self.outbox_publish_errors.labels(dependency)
        self.outbox_relay_leader = Gauge(
            "ras_outbox_relay_leader", "1 while this process's relay holds the publisher lock", registry=r
        )
        self.database_circuit = Gauge(
            "ras_database_circuit_state",
            "The API's database circuit breaker: 1 for its current state",
            ["state"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The Prometheus text of this process, or of every server process when the server runs several
        (then PROMETHEUS_MULTIPROC_DIR is set and each process writes its values there)."""
        if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    def observe_retry(self, records: Sequence[RawRecord], *_: object) -> None:
        """A transient failure: the records will be tried again (outcome `retryable`)."""
        self.transient_failures.labels("ingest").inc()
        for topic, count in Tally(record.topic for record in records).items():
            self.events_processed.labels(topic, "retryable").inc(count)

    def observe_dependencies(self, answered: Mapping[str, bool]) -> None:
        """The outcome of a health check, per dependency (database, redis, kafka)."""
        for dependency, up in answered.items():
            self.dependency_up.labels(dependency).set(1 if up else 0)

    def observe_ingest(self, report: IngestReport, size: int, seconds: float) -> None:
        """A micro-batch (or a parked record) committed."""
        self.last_commit.set_to_current_time()
        self.micro_batch_size.observe(size)
        self.micro_batch_duration.observe(seconds)
        for (topic, outcome), count in report.outcomes.items():
            self.events_processed.labels(topic, outcome).inc(count)
        for parked in report.parked:
            self.parked_events.labels(parked.record.topic, parked.reason.value).inc()
        now = datetime.now(UTC)
        for topic, event_time in report.applied_event_times:
            self.event_to_commit.labels(topic).observe(max((now - event_time).total_seconds(), 0.0))
