"""The platform's event envelope, generic over its payload."""

from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

T = TypeVar("T")

GATEWAY_SERVICE = "api_gateway_service"
WORKER_SERVICE = "batch_conductor_service"


class EventEnvelope(BaseModel, Generic[T]):
    """Every Kafka message value on the platform: identity, timing, tracing and a typed `data` payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID
    event_type: str = Field(min_length=1)
    event_timestamp: AwareDatetime
    source_service: str = Field(min_length=1)
    schema_version: int = 1
    correlation_id: UUID | None = None
    data_schema_uri: str | None = None
    data: T
    metadata: dict[str, Any] | None = None


class RawEnvelope(EventEnvelope[dict[str, Any]]):
    """An envelope whose payload is not parsed yet (the first decoding step)."""


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a trailing Z."""
    return moment.isoformat().replace("+00:00", "Z")
