"""The event envelope every producer wraps its payload in (fixed wire contract)."""

from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

DataT = TypeVar("DataT", bound=BaseModel)


class ContractModel(BaseModel):
    """Base of every wire model: producers may add fields; types are checked strictly."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class EventEnvelope(ContractModel, Generic[DataT]):
    event_id: UUID
    event_type: str
    event_timestamp: datetime
    source_service: str
    schema_version: int = 1
    correlation_id: UUID
    data_schema_uri: str | None = None
    data: DataT
    metadata: dict[str, Any] | None = None
