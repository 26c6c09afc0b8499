"""The gateway's HTTP shapes: flat snake_case JSON with stable enums, as the React frontend keeps them in state."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from contracts.pipelines import PipelineStep
from contracts.state import RequestOutcome, StepProgress

# Batch ids travel in URLs and Kafka keys: letters, digits and `._:-`, 1-255 characters, starting alphanumeric.
BATCH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
BATCH_ID_MAX_LENGTH = 255

EXAMPLE_BATCH_ID = "batch-2026-demo"
EXAMPLE_CORRELATION_ID = "1b8315aa-c3c0-48da-a286-5f5ec97b5cc5"


class PipelineRequestBody(BaseModel):
    """Ask for a pipeline (or a bare step plus its dependencies) to run on a batch."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"requested_pipeline": "ai_feedback"},
                {"requested_pipeline": "nlp", "is_retry": True, "retry_reason": "NLP service restarted"},
            ]
        },
    )

    requested_pipeline: str = Field(
        min_length=1,
        max_length=100,
        description="A pipeline of pipelines.yaml, or a bare step name (`GET /v1/pipelines` lists them).",
        examples=["ai_feedback", "nlp"],
    )
    is_retry: bool = Field(False, description="True when the client repeats a request that failed.")
    retry_reason: str | None = Field(None, max_length=500, description="Why the request is repeated.")
    batch_id: str | None = Field(
        None,
        min_length=1,
        max_length=BATCH_ID_MAX_LENGTH,
        description="Optional; when given it must equal the batch id in the path.",
        examples=[EXAMPLE_BATCH_ID],
    )
    prompt_payload: dict[str, Any] | None = Field(None, description="Opaque prompt data passed on to the pipeline.")

    @field_validator("is_retry", mode="before")
    @classmethod
    def _json_boolean(cls, value: object) -> object:
        # The schema says boolean: refuse pydantic's lax coercions (0, 1, "yes", "false"...) instead of guessing.
        # Found by fuzzing the OpenAPI document (schemathesis); the error type stays the one clients know.
        if not isinstance(value, bool):
            raise PydanticCustomError("bool_parsing", "Input should be a JSON boolean (true or false)")
        return value


class PipelineAccepted(BaseModel):
    """The command was published and acknowledged by the broker; follow `status_url` to its outcome."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "accepted",
                    "batch_id": EXAMPLE_BATCH_ID,
                    "requested_pipeline": "ai_feedback",
                    "correlation_id": EXAMPLE_CORRELATION_ID,
                    "status_url": f"/v1/batches/{EXAMPLE_BATCH_ID}/pipelines/{EXAMPLE_CORRELATION_ID}",
                    "batch_status_url": f"/v1/batches/{EXAMPLE_BATCH_ID}/status",
                }
            ]
        }
    )

    status: Literal["accepted"] = "accepted"
    batch_id: str
    requested_pipeline: str
    correlation_id: UUID = Field(description="The command's client_correlation_id and correlation_id.")
    status_url: str = Field(description="Where this request's outcome appears (GET).")
    batch_status_url: str = Field(description="The batch's projected state (GET).")


class OutcomeStatus(StrEnum):
    """Where one pipeline request stands."""

    PENDING = "pending"
    RESOLVED = "resolved"
    FAILED = "failed"


class PipelineRequestOutcome(BaseModel):
    """The outcome of one pipeline request: pending, resolved with its steps, or failed with its reason."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": EXAMPLE_BATCH_ID,
                    "correlation_id": EXAMPLE_CORRELATION_ID,
                    "status": "resolved",
                    "requested_pipeline": "nlp",
                    "user_id": "teacher-42",
                    "is_retry": False,
                    "requested_at": "2026-11-29T10:20:08.357400Z",
                    "final_pipeline": ["nlp"],
                    "pruned_steps": ["spellcheck"],
                    "steps": [
                        {
                            "name": "nlp",
                            "service_name": "nlp_service",
                            "event_type": "huleedu.batch.nlp.initiate.command.v1",
                            "event_data_model": "BatchServiceNLPInitiateCommandDataV1",
                            "depends_on": ["spellcheck"],
                        }
                    ],
                    "analysis_summary": "1 step to run; spellcheck already complete",
                    "reason_code": None,
                    "message": None,
                },
                {
                    "batch_id": EXAMPLE_BATCH_ID,
                    "correlation_id": EXAMPLE_CORRELATION_ID,
                    "status": "pending",
                    "requested_pipeline": None,
                    "user_id": None,
                    "is_retry": None,
                    "requested_at": None,
                    "final_pipeline": [],
                    "pruned_steps": [],
                    "steps": [],
                    "analysis_summary": None,
                    "reason_code": None,
                    "message": "No outcome recorded yet.",
                },
            ]
        }
    )

    batch_id: str
    correlation_id: UUID
    status: OutcomeStatus
    requested_pipeline: str | None = None
    user_id: str | None = None
    is_retry: bool | None = None
    requested_at: datetime | None = None
    final_pipeline: list[str] = Field(default_factory=list)
    pruned_steps: list[str] = Field(default_factory=list)
    steps: list[PipelineStep] = Field(default_factory=list)
    analysis_summary: str | None = None
    reason_code: str | None = None
    message: str | None = None


def outcome_view(batch_id: str, correlation_id: UUID, outcome: RequestOutcome | None) -> PipelineRequestOutcome:
    """Return what `GET .../pipelines/{correlation_id}` answers (and a `request` event carries) for an outcome."""
    if outcome is None:
        return PipelineRequestOutcome(
            batch_id=batch_id,
            correlation_id=correlation_id,
            status=OutcomeStatus.PENDING,
            message="No outcome recorded yet.",
        )
    return PipelineRequestOutcome(
        batch_id=batch_id,
        correlation_id=correlation_id,
        status=OutcomeStatus(outcome.status),
        requested_pipeline=outcome.requested_pipeline,
        user_id=outcome.user_id,
        is_retry=outcome.is_retry,
        requested_at=outcome.requested_at,
        final_pipeline=outcome.final_pipeline,
        pruned_steps=outcome.pruned_steps,
        steps=outcome.steps,
        analysis_summary=outcome.analysis_summary,
        reason_code=outcome.reason_code,
        message=outcome.message,
    )


class BatchProgressEvent(BaseModel):
    """The data of a `progress` event: the batch's per-step progress, as in its status."""

    batch_id: str
    steps: list[StepProgress]


_EXAMPLE_TICKET = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2lnbmF0dXJl"


class StreamTicket(BaseModel):
    """A short-lived ticket that opens this batch's event stream without an Authorization header (EventSource)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ticket": _EXAMPLE_TICKET,
                    "expires_in": 60,
                    "events_url": f"/v1/batches/{EXAMPLE_BATCH_ID}/events?ticket={_EXAMPLE_TICKET}",
                }
            ]
        }
    )

    ticket: str = Field(description="Opaque; bound to the caller and this batch; opens event streams only.")
    expires_in: int = Field(description="Seconds the ticket stays valid for opening (or re-opening) the stream.")
    events_url: str = Field(description="The event stream's URL with the ticket (for `new EventSource(url)`).")


class PipelineInfo(BaseModel):
    """One pipeline of the catalog and its steps in run order."""

    name: str
    description: str
    steps: list[str]


class PipelineCatalogView(BaseModel):
    """What `requested_pipeline` accepts: every pipeline, and every step name (a step runs with its dependencies)."""

    pipelines: list[PipelineInfo]
    steps: list[str]


class HealthView(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"


class CheckStatus(StrEnum):
    """The result of one readiness check."""

    OK = "ok"
    FAILING = "failing"


class ReadinessView(BaseModel):
    """Readiness: the producer is connected and the worker answers."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckStatus]


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="Dotted path of the field, e.g. `requested_pipeline` or `batch_id`.")
    location: Literal["body", "path", "query", "header"]
    message: str
    type: str = Field(description="Stable machine-readable error type, e.g. `missing`, `extra_forbidden`.")


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`) with the platform's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str = Field(description="`urn:uuid:<correlation id>`: this occurrence of the problem.")
    code: str = Field(description="Stable machine-readable error code.")
    correlation_id: UUID
    errors: list[FieldError] = Field(default_factory=list)
