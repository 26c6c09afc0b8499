"""Commands clients send through the gateway."""

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class ClientBatchPipelineRequestV1(BaseModel):
    """A client asks for a pipeline to run on a batch (topic `huleedu.commands.batch.pipeline.v1`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    batch_id: str = Field(min_length=1, max_length=255)
    requested_pipeline: str = Field(min_length=1, max_length=100)
    client_correlation_id: UUID
    # Required by the 2026 generation (our gateway always sets it); absent from the 2025 generation.
    user_id: str | None = Field(default=None, min_length=1, max_length=255)
    is_retry: bool = False
    retry_reason: str | None = Field(default=None, max_length=500)
    prompt_payload: dict[str, Any] | None = None
