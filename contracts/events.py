"""Completion events the worker consumes and the events and DLQ records it produces."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts.pipelines import PipelineStep

_INPUT = ConfigDict(extra="ignore", frozen=True)
_OUTPUT = ConfigDict(extra="forbid", frozen=True)


class EntityRef(BaseModel):
    """The 2025 generation's nested entity reference."""

    model_config = _INPUT

    entity_id: str = Field(min_length=1)
    entity_type: str | None = None
    parent_id: str | None = None


class SystemMetadata(BaseModel):
    """Processing metadata; carries the entity nested (2025) or flat (2026)."""

    model_config = _INPUT

    entity: EntityRef | None = None
    entity_id: str | None = None
    entity_type: str | None = None
    parent_id: str | None = None


class _EntityFields(BaseModel):
    """Entity identity in either generation: nested `entity_ref` (2025) or flat fields (2026)."""

    model_config = _INPUT

    entity_ref: EntityRef | None = None
    entity_id: str | None = Field(default=None, min_length=1)
    entity_type: str | None = None
    parent_id: str | None = None
    system_metadata: SystemMetadata | None = None

    def _entity(self) -> tuple[str | None, str | None]:
        """Return (entity id, parent id): payload first (nested, then flat), else `system_metadata`."""
        meta = self.system_metadata
        meta_ref = meta.entity if meta is not None and meta.entity is not None else meta
        ref = self.entity_ref if self.entity_ref is not None else self
        entity = ref.entity_id or (meta_ref.entity_id if meta_ref is not None else None)
        parent = ref.parent_id or (meta_ref.parent_id if meta_ref is not None else None)
        return entity, parent


class SpellcheckResultDataV1(_EntityFields):
    """One essay's spellcheck finished (`huleedu.essay.spellcheck.completed.v1`)."""

    event_name: Literal["essay.spellcheck.completed"] = "essay.spellcheck.completed"
    timestamp: AwareDatetime
    status: Literal["spellchecked_success", "spellcheck_failed"]
    original_text_storage_id: str | None = None
    corrections_made: int | None = None

    @model_validator(mode="after")
    def _has_ids(self) -> "SpellcheckResultDataV1":
        essay_id, batch_id = self._entity()
        if not essay_id:
            raise ValueError("essay id missing: need entity_ref.entity_id or entity_id")
        if not batch_id:
            raise ValueError("batch id missing: need entity_ref.parent_id, parent_id or system_metadata parent")
        return self

    @property
    def essay_id(self) -> str:
        """Return the essay this result is for."""
        return str(self._entity()[0])

    @property
    def batch_id(self) -> str:
        """Return the batch the essay belongs to (the entity's parent)."""
        return str(self._entity()[1])


class CJRanking(BaseModel):
    """One ranked essay (2025 generation: every ranked essay succeeded)."""

    model_config = _INPUT

    els_essay_id: str = Field(min_length=1)
    rank: int | None = None
    score: float | None = None


class CJProcessingSummary(BaseModel):
    """Per-essay CJ outcome (2026 generation)."""

    model_config = _INPUT

    successful_essay_ids: list[str] = Field(default_factory=list)
    failed_essay_ids: list[str] = Field(default_factory=list)


class CJAssessmentCompletedV1(_EntityFields):
    """A batch's comparative-judgement assessment finished (`huleedu.cj_assessment.completed.v1`)."""

    event_name: Literal["cj_assessment.completed"] = "cj_assessment.completed"
    timestamp: AwareDatetime
    status: str
    cj_assessment_job_id: str
    rankings: list[CJRanking] | None = None
    processing_summary: CJProcessingSummary | None = None

    @model_validator(mode="after")
    def _has_ids(self) -> "CJAssessmentCompletedV1":
        if not self._entity()[0]:
            raise ValueError("batch id missing: need entity_ref.entity_id or entity_id")
        if self.rankings is None and self.processing_summary is None:
            raise ValueError("need either rankings (2025) or processing_summary (2026)")
        return self

    @property
    def batch_id(self) -> str:
        """Return the assessed batch."""
        return str(self._entity()[0])

    def essay_outcomes(self) -> tuple[list[str], list[str]]:
        """Return (succeeded essay ids, failed essay ids)."""
        if self.processing_summary is not None:
            return list(self.processing_summary.successful_essay_ids), list(self.processing_summary.failed_essay_ids)
        return [r.els_essay_id for r in self.rankings or []], []


class ProcessedEssay(BaseModel):
    """An essay that succeeded in an ELS phase."""

    model_config = _INPUT

    essay_id: str = Field(min_length=1)
    text_storage_id: str | None = None


class ELSBatchPhaseOutcomeV1(BaseModel):
    """ELS reports a phase outcome for a batch (`huleedu.els.batch.phase.outcome.v1`, 2026 generation)."""

    model_config = _INPUT

    batch_id: str = Field(min_length=1, max_length=255)
    phase_name: str = Field(min_length=1)
    phase_status: str
    processed_essays: list[ProcessedEssay] = Field(default_factory=list)
    failed_essay_ids: list[str] = Field(default_factory=list)
    correlation_id: UUID | None = None


class BatchEssaysRegistered(BaseModel):
    """BOS registered a batch and its essays (`huleedu.batch.essays.registered.v1`)."""

    model_config = _INPUT

    batch_id: str | None = Field(default=None, min_length=1, max_length=255)
    entity_id: str | None = Field(default=None, min_length=1, max_length=255)
    expected_essay_count: int = Field(ge=1)
    essay_ids: list[str]
    user_id: str | None = None
    org_id: str | None = None
    course_code: str | None = None
    class_id: str | None = None

    @model_validator(mode="after")
    def _has_batch_id(self) -> "BatchEssaysRegistered":
        if not (self.batch_id or self.entity_id):
            raise ValueError("batch id missing: need batch_id (2025) or entity_id (2026)")
        return self

    @property
    def registered_batch_id(self) -> str:
        """Return the batch id from whichever field this generation uses."""
        return str(self.batch_id or self.entity_id)


# ---- outputs -------------------------------------------------------------------------------------


class BatchPipelineResolvedV1(BaseModel):
    """The resolved, dependency-ordered pipeline for BOS (`huleedu.batch.pipeline.resolved.v1`)."""

    model_config = _OUTPUT

    batch_id: str
    requested_pipeline: str
    client_correlation_id: UUID
    user_id: str | None
    final_pipeline: list[str]
    steps: list[PipelineStep]
    pruned_steps: list[str]
    analysis_summary: str


class PipelineResolutionFailedV1(BaseModel):
    """A command that could not be resolved (`huleedu.batch.pipeline.resolution.failed.v1`)."""

    model_config = _OUTPUT

    batch_id: str
    requested_pipeline: str
    client_correlation_id: UUID
    user_id: str | None
    reason_code: str
    message: str


class PhaseSkippedMetadata(BaseModel):
    """Entity metadata of a skipped phase (the batch)."""

    model_config = _OUTPUT

    entity_id: str
    entity_type: Literal["batch"] = "batch"
    parent_id: None = None
    timestamp: AwareDatetime


class PhaseSkippedV1(BaseModel):
    """One pruned step (`huleedu.batch.phase.skipped.v1`)."""

    model_config = _OUTPUT

    event: Literal["batch.phase.skipped"] = "batch.phase.skipped"
    batch_id: str
    phase_name: str
    skip_reason: Literal["already_completed"] = "already_completed"
    storage_id: str | None = None
    correlation_id: UUID
    metadata: PhaseSkippedMetadata


class DLQRecord(BaseModel):
    """A dead-lettered input message and why (`<input topic>.DLQ`, not enveloped)."""

    model_config = _OUTPUT

    schema_version: int = 1
    failed_event_envelope: Any
    dlq_reason: str
    timestamp: datetime
    service: str = "batch_conductor_service"
    additional_metadata: dict[str, Any] | None = None
