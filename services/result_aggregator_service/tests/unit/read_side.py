"""The API over the in-memory read side: an app whose container serves the fake cache and read model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from dishka import Provider, Scope, provide
from pydantic import SecretStr
from quart.typing import TestClientProtocol

from common_core.enums import BatchClientStatus, BatchStatus
from result_aggregator_service.adapters.in_memory_reads import InMemoryReadModel, InMemoryResponseCache
from result_aggregator_service.api_models import BatchStatusResponse, EssayResultResponse
from result_aggregator_service.config import Settings
from result_aggregator_service.entrypoints.api import api_container, create_app
from result_aggregator_service.live_changes import ChangeFeed
from result_aggregator_service.metrics import ServiceMetrics
from result_aggregator_service.read_service import ReadModel, ResponseCache

API_KEY = "unit-internal-api-key"
AUTH = {"X-Internal-API-Key": API_KEY, "X-Service-ID": "bff-teacher-service"}
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


class InMemoryReadSide(Provider):
    def __init__(self, cache: InMemoryResponseCache, model: InMemoryReadModel) -> None:
        super().__init__()
        self._cache, self._model = cache, model

    @provide(scope=Scope.APP)
    def cache(self) -> ResponseCache:
        return self._cache

    @provide(scope=Scope.APP)
    def model(self) -> ReadModel:
        return self._model

    @provide(scope=Scope.APP)
    def feed(self) -> ChangeFeed:
        return self._cache.feed


@dataclass
class Api:
    client: TestClientProtocol
    cache: InMemoryResponseCache
    model: InMemoryReadModel
    metrics: ServiceMetrics

    def lookups(self, route: str, result: str) -> float:
        labels = {"route": route, "result": result}
        return self.metrics.registry.get_sample_value("ras_cache_lookups_total", labels) or 0.0


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    settings = Settings(internal_api_key=SecretStr(API_KEY), database_url="postgresql+asyncpg://nowhere/none")
    cache, model = InMemoryResponseCache(), InMemoryReadModel()
    container = api_container(settings, InMemoryReadSide(cache, model))
    app = create_app(settings, container)
    async with app.test_app() as test_app:
        yield Api(test_app.test_client(), cache, model, await container.get(ServiceMetrics))
    await container.close()


def a_batch(
    batch_id: str, user_id: str = "teacher-1", created_minutes: int = 0, essays: int = 1
) -> BatchStatusResponse:
    created = EPOCH + timedelta(minutes=created_minutes)
    return BatchStatusResponse(
        batch_id=batch_id,
        user_id=user_id,
        overall_status=BatchClientStatus.PROCESSING,
        essay_count=essays,
        completed_essay_count=0,
        failed_essay_count=0,
        essays=[EssayResultResponse(essay_id=f"{batch_id}-e{i}", last_updated=created) for i in range(essays)],
        created_at=created,
        last_updated=created,
    )


def put(api: Api, response: BatchStatusResponse, version: int = 1, status: BatchStatus | None = None) -> None:
    api.model.put(response, version, status or BatchStatus.PROCESSING_PIPELINES)
