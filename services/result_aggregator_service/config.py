"""The one Settings object of the service: env prefix RESULT_AGGREGATOR_, plus the stack's shared names."""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common_core.topics import CONSUMED_TOPICS

_PREFIX = "RESULT_AGGREGATOR_"


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

    # connections (the local stack writes these three to .local-stack/stack.env)
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS"))
    database_url: str = Field(
        "postgresql+asyncpg://result_aggregator:result_aggregator@127.0.0.1:5432/result_aggregator",
        validation_alias=_shared("DATABASE_URL"),
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_shared("REDIS_URL"))
    database_pool_size: int = Field(10, ge=1)

    # consumption
    consumer_group: str = "result_aggregator_group"
    subscribed_topics: list[str] = Field(default_factory=lambda: list(CONSUMED_TOPICS))
    micro_batch_max_events: int = Field(500, ge=1, le=10_000)
    micro_batch_max_wait_seconds: float = Field(0.2, gt=0)
    retry_initial_seconds: float = Field(0.1, gt=0)
    retry_max_seconds: float = Field(5.0, gt=0)
    seen_hint_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    worker_metrics_port: int = 9101
    kafka_session_timeout_seconds: float = 10.0
    kafka_rebalance_timeout_seconds: float = 10.0

    # internal HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = 4003
    http_workers: int = Field(1, ge=1)
    internal_api_key: SecretStr = SecretStr("dev-internal-api-key")
    allowed_service_ids: list[str] = Field(
        default_factory=lambda: ["api-gateway-service", "bff-teacher-service", "admin-dashboard-service"]
    )
    cache_ttl_seconds: int = Field(300, ge=1)
    cache_max_pages_per_user: int = Field(20, ge=0)

    # observability
    log_level: str = "INFO"
    log_json: bool = True
