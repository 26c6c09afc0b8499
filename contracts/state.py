"""The batch-state read model: what the worker keeps per batch and what its views and the gateway return."""

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.pipelines import PipelineStep

_MODEL = ConfigDict(extra="forbid")


class EssayOutcome(BaseModel):
    """The latest known outcome of one essay in one step (later `at` wins; success wins a tie)."""

    model_config = _MODEL

    at: AwareDatetime
    ok: bool


class Registration(BaseModel):
    """What BOS registered for a batch."""

    model_config = _MODEL

    essay_ids: tuple[str, ...]
    expected_essay_count: int
    user_id: str | None = None
    org_id: str | None = None
    at: AwareDatetime
    event_id: str


# Every write of a batch's `batch_state` or `pipeline_requests` row takes the batch's next version: one more than
# the highest of the two rows' versions. `version` is the first field of both rows so that the JSON starts with
# it and the other row's version can be read without parsing the whole row (tables.batch_state.peek_version).


class BatchState(BaseModel):
    """Everything the worker knows about one batch (the `batch_state` table value)."""

    model_config = _MODEL

    version: int = Field(0, ge=0, description="The batch version of this row's last write.")
    batch_id: str
    registration: Registration | None = None
    steps: dict[str, dict[str, EssayOutcome]] = Field(default_factory=dict)

    def completed_steps(self) -> frozenset[str]:
        """Return the steps in which every registered essay has succeeded."""
        if self.registration is None or not self.registration.essay_ids:
            return frozenset()
        essays = self.registration.essay_ids
        return frozenset(
            step
            for step, outcomes in self.steps.items()
            if all((o := outcomes.get(e)) is not None and o.ok for e in essays)
        )


class BatchStateUpdate(BaseModel):
    """One completion event, normalised and keyed by batch id (internal repartition topic record)."""

    model_config = _MODEL

    batch_id: str
    source_topic: str
    source_event_id: str
    at: AwareDatetime
    registration: Registration | None = None
    step: str | None = None
    succeeded: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


class StepStatus(StrEnum):
    """Where a step stands for a batch."""

    COMPLETED = "completed"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    NOT_STARTED = "not_started"


class StepProgress(BaseModel):
    """Per-step essay counts for a batch."""

    model_config = _MODEL

    step: str
    status: StepStatus
    succeeded: int
    failed: int
    pending: int


class RequestOutcome(BaseModel):
    """How one pipeline request ended (the `pipeline_requests` table keeps these per batch)."""

    model_config = _MODEL

    client_correlation_id: UUID
    version: int = Field(0, ge=0, description="The batch version at which this outcome was recorded.")
    requested_pipeline: str
    user_id: str | None = None
    is_retry: bool = False
    requested_at: AwareDatetime
    status: Literal["resolved", "failed"]
    final_pipeline: list[str] = Field(default_factory=list)
    pruned_steps: list[str] = Field(default_factory=list)
    steps: list[PipelineStep] = Field(default_factory=list)
    analysis_summary: str | None = None
    reason_code: str | None = None
    message: str | None = None


class BatchRequests(BaseModel):
    """The most recent requests of one batch, oldest first (the `pipeline_requests` table value)."""

    model_config = _MODEL

    version: int = Field(0, ge=0, description="The batch version of this row's last write.")
    batch_id: str
    requests: list[RequestOutcome] = Field(default_factory=list)
    dropped_through: int = Field(
        0, ge=0, description="The highest version of an outcome dropped off the bounded list (0: none dropped)."
    )

    def find(self, correlation_id: UUID) -> RequestOutcome | None:
        """Return the outcome of the request with this correlation id, if kept."""
        return next((r for r in self.requests if r.client_correlation_id == correlation_id), None)


class BatchStatusView(BaseModel):
    """A batch's projected state and recent requests, as the worker view and the gateway return it."""

    model_config = _MODEL

    batch_id: str
    version: int = Field(
        0,
        ge=0,
        description=(
            "The batch's version: it grows with every change of its state or requests. The event stream's event "
            "ids are these versions (send one back as `Last-Event-ID` to resume after it)."
        ),
    )
    registered: bool
    user_id: str | None = None
    expected_essay_count: int = 0
    essay_count: int = 0
    steps: list[StepProgress] = Field(default_factory=list)
    recent_requests: list[RequestOutcome] = Field(default_factory=list)


class BatchChanges(BaseModel):
    """The worker's long-poll answer: the batch's status, and what the gateway needs to turn it into events."""

    model_config = _MODEL

    status: BatchStatusView
    progress_version: int = Field(0, ge=0, description="The batch version of the last `batch_state` write.")
    dropped_through: int = Field(0, ge=0, description="Outcomes up to this version may have dropped off the list.")
    changed_at: float = Field(0.0, description="Worker wall-clock time (Unix seconds) of the last write it saw.")
