"""The one Settings object of the service: env prefix RESULT_AGGREGATOR_, plus the stack's shared names."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common_core.topics import (
    BATCH_ASSESSMENT_COMPLETED_TOPIC,
    BATCH_RESULTS_READY_TOPIC,
    CONSUMED_TOPICS,
    TEACHER_NOTIFICATION_REQUESTED_TOPIC,
)

_PREFIX = "RESULT_AGGREGATOR_"
DEVELOPMENT_API_KEY = "dev-internal-api-key"


class Environment(StrEnum):
    DEVELOPMENT = "development"  # the dev scripts and the tests set it: the API may fall back to a known key
    PRODUCTION = "production"


class ConfigurationError(ValueError):
    """A setting the process cannot start without; the message says which and what to do."""


def _shared(name: str) -> AliasChoices:
    """A setting the local stack writes under a shared name; the prefixed name also works."""
    return AliasChoices(name, f"{_PREFIX}{name}")


class Settings(BaseSettings):
    # Real environment variables win; the env file is the one `stack up` writes (absent in production).
    model_config = SettingsConfigDict(
        env_prefix=_PREFIX,
        extra="ignore",
        populate_by_name=True,
        env_file=os.environ.get(f"{_PREFIX}ENV_FILE", ".local-stack/stack.env"),
    )

    environment: Environment = Environment.PRODUCTION

    # connections (the local stack writes these three to .local-stack/stack.env)
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS"))
    database_url: str = Field(
        "postgresql+asyncpg://result_aggregator:result_aggregator@127.0.0.1:5432/result_aggregator",
        validation_alias=_shared("DATABASE_URL"),
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_shared("REDIS_URL"))
    database_pool_size: int = Field(10, ge=1)
    # bounds on every database connection (client-side; server-side statement, lock and idle transaction)
    database_command_timeout_seconds: float = Field(60.0, gt=0)
    database_statement_timeout_seconds: float = Field(30.0, gt=0)
    database_lock_timeout_seconds: float = Field(10.0, gt=0)
    database_idle_in_transaction_seconds: float = Field(60.0, gt=0)

    # consumption
    consumer_group: str = "result_aggregator_group"
    subscribed_topics: list[str] = Field(default_factory=lambda: list(CONSUMED_TOPICS))
    micro_batch_max_events: int = Field(2_000, ge=1, le=10_000)
    retry_initial_seconds: float = Field(0.1, gt=0)
    retry_max_seconds: float = Field(5.0, gt=0)
    seen_hint_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    worker_metrics_port: int = 9101
    kafka_session_timeout_seconds: float = 10.0
    kafka_rebalance_timeout_seconds: float = 10.0
    kafka_fetch_max_wait_ms: int = Field(20, ge=0)
    lag_interval_seconds: float = Field(5.0, gt=0)
    # idempotency claims older than this are pruned: keep it longer than the topics' retention
    processed_events_retention_days: float = Field(30.0, gt=0)
    processed_events_prune_interval_seconds: float = Field(3600.0, gt=0)
    processed_events_prune_batch: int = Field(5000, ge=1)
    worker_stall_seconds: float = Field(120.0, gt=0)  # lag and no commit this long: /healthz answers 503
    shutdown_grace_seconds: float = Field(10.0, gt=0)
    facts_cache_batches: int = Field(2_000, ge=0)  # batches whose last committed facts the worker keeps
    # set by `ras rebuild` on its shadow workers only: fold into this schema, announce nothing
    read_model_schema: str | None = Field(None, pattern=r"^rm_shadow_[a-z0-9_]+$")
    rebuild_grace_seconds: float = Field(600.0, ge=0)  # a swapped-out read model is kept this long

    # publishing (brief §6): due events are written to the outbox with the change that made them due;
    # off: nothing is written to the outbox
    publish_enabled: bool = True
    results_ready_topic: str = BATCH_RESULTS_READY_TOPIC
    assessment_completed_topic: str = BATCH_ASSESSMENT_COMPLETED_TOPIC
    teacher_notification_topic: str = TEACHER_NOTIFICATION_REQUESTED_TOPIC
    # the outbox relay (a task of every worker; one at a time publishes, the others stand by)
    outbox_relay_enabled: bool = True
    outbox_relay_poll_seconds: float = Field(5.0, gt=0)  # fallback wake-up (NOTIFY wakes it at once); standby retry
    outbox_relay_batch_size: int = Field(500, ge=1, le=10_000)  # rows read, published and marked per round

    # internal HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 4003
    http_workers: int = Field(1, ge=1)
    internal_api_key: SecretStr | None = None  # required outside development: see api_key()
    allowed_service_ids: list[str] = Field(
        default_factory=lambda: ["api-gateway-service", "bff-teacher-service", "admin-dashboard-service"]
    )
    cache_ttl_seconds: int = Field(300, ge=1)
    database_circuit_failure_threshold: int = Field(5, ge=1)  # consecutive connection failures that open it
    database_circuit_cool_down_seconds: float = Field(5.0, gt=0)  # open this long, then one probe
    cache_max_pages_per_user: int = Field(20, ge=0)
    # batch answers each API process also keeps in memory (0: off), dropped on the worker's announcements
    api_local_cache_entries: int = Field(10_000, ge=0)
    api_local_cache_seconds: float = Field(5.0, gt=0)  # a local copy's lifetime, at most
    # read-your-writes: how long a status read waits for the caller's event when it names no bound, and
    # the most it may name
    event_wait_default_seconds: float = Field(2.0, gt=0)
    event_wait_max_seconds: float = Field(10.0, gt=0)
    # live change feeds (SSE): open streams per API process (beyond: 503), idle heartbeat interval
    live_feed_max_streams: int = Field(2000, ge=1)
    live_feed_heartbeat_seconds: float = Field(15.0, gt=0)

    # observability
    log_level: str = "INFO"
    # json | console; unset: console when the log stream is a terminal, JSON otherwise
    log_format: Literal["json", "console"] | None = None
    otlp_endpoint: str | None = None  # OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces; none: off

    def api_key(self) -> str:
        """The internal API's shared key. Only in development may it be missing (then the well-known
        development key is used); outside development the well-known key is refused too."""
        configured = self.internal_api_key.get_secret_value() if self.internal_api_key else ""
        if self.environment is Environment.DEVELOPMENT:
            return configured or DEVELOPMENT_API_KEY
        variable = f"{_PREFIX}INTERNAL_API_KEY"
        if not configured:
            raise ConfigurationError(
                f"{variable} is not set. Set it to the shared secret of the internal API, or set "
                f"{_PREFIX}ENVIRONMENT=development to use the development key."
            )
        if configured == DEVELOPMENT_API_KEY:
            raise ConfigurationError(f"{variable} is the public development key; set a secret one.")
        return configured
