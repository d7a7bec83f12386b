"""The event envelope every producer wraps its payload in (fixed wire contract)."""

import math
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

DataT = TypeVar("DataT", bound=BaseModel)


def _finite_throughout(value: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or Infinity (RFC 8259): a free-form object holding one, at any depth, is invalid."""
    pending: list[Any] = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{node} is not a JSON number (NaN and Infinity are not allowed)")
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return value


# A free-form JSON object (metadata, error_info, ...): any keys, but only JSON's own values.
JsonObject = Annotated[dict[str, Any], AfterValidator(_finite_throughout)]


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
    metadata: JsonObject | None = None
