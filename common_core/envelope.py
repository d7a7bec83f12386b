"""The event envelope every producer wraps its payload in (fixed wire contract)."""

from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

DataT = TypeVar("DataT", bound=BaseModel)


class ContractModel(BaseModel):
    """Base of every wire model: producers may add fields; types are checked strictly; no NaN or infinity."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, allow_inf_nan=False)


class EventEnvelope(ContractModel, Generic[DataT]):
    event_id: UUID
    event_type: str
    event_timestamp: AwareDatetime  # the ordering key of every fact: a zone-less time is a schema error
    source_service: str
    schema_version: int = 1
    correlation_id: UUID
    data_schema_uri: str | None = None
    data: DataT
    metadata: dict[str, Any] | None = None
