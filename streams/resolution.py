"""PURE: resolve a pipeline command against a batch's state, and build the events that announce it."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import WORKER_SERVICE, EventEnvelope
from contracts.events import (
    BatchPipelineResolvedV1,
    PhaseSkippedMetadata,
    PhaseSkippedV1,
    PipelineResolutionFailedV1,
)
from contracts.pipelines import PipelineCatalog, PipelineStep, UnknownPipeline
from contracts.state import BatchState, RequestOutcome
from contracts.topics import Topic

# Namespace of the deterministic ids of everything the worker emits (uuid5): a redelivered
# command produces byte-identical events.
OUTPUT_ID_NAMESPACE = uuid.UUID("6f1d3c52-5b0e-4c1a-9a55-bc0d7f8e2a01")

# Parametrise the generic envelope once: pydantic caches `EventEnvelope[Any]` only weakly, and re-creating the
# class for every output event cost more than building the event (bench/README.md).
_OUTPUT_ENVELOPE = EventEnvelope[Any]


@dataclass(frozen=True)
class Resolution:
    """The pure result of resolving a pipeline: the steps to run and those already complete."""

    final_pipeline: list[str]
    pruned_steps: list[str]
    steps: list[PipelineStep]


@dataclass(frozen=True)
class OutputEvent:
    """One message to produce: topic, key and serialized value."""

    topic: str
    key: str
    value: bytes


def resolve(catalog: PipelineCatalog, requested: str, completed: frozenset[str]) -> Resolution:
    """Order the requested pipeline's steps and prune those complete for the batch (order kept)."""
    plan = catalog.plan(requested)
    keep = [s for s in plan if s.name not in completed]
    return Resolution(
        final_pipeline=[s.name for s in keep],
        pruned_steps=[s.name for s in plan if s.name in completed],
        steps=keep,
    )


def summarize(batch_id: str, requested: str, resolution: Resolution) -> str:
    """Describe a resolution in one sentence for humans."""
    if not resolution.final_pipeline:
        return (
            f"All steps of '{requested}' are already complete for batch '{batch_id}' "
            f"({', '.join(resolution.pruned_steps)}): nothing to run."
        )
    text = (
        f"Pipeline '{requested}' for batch '{batch_id}': {len(resolution.final_pipeline)} step(s) to run "
        f"({' -> '.join(resolution.final_pipeline)})"
    )
    if resolution.pruned_steps:
        text += f"; {len(resolution.pruned_steps)} already complete and pruned ({', '.join(resolution.pruned_steps)})"
    return text + "."


def resolve_request(
    catalog: PipelineCatalog,
    command: ClientBatchPipelineRequestV1,
    requested_at: datetime,
    state: BatchState | None,
) -> RequestOutcome:
    """Decide a command's outcome: a resolution, or a failure with a reason code."""
    base = {
        "client_correlation_id": command.client_correlation_id,
        "requested_pipeline": command.requested_pipeline,
        "user_id": command.user_id,
        "is_retry": command.is_retry,
        "requested_at": requested_at,
    }

    def failed(code: str, message: str) -> RequestOutcome:
        return RequestOutcome(status="failed", reason_code=code, message=message, **base)

    if not catalog.accepts(command.requested_pipeline):
        return failed(
            "UNKNOWN_PIPELINE",
            f"Unknown pipeline '{command.requested_pipeline}'; valid pipelines: {', '.join(catalog.names)}",
        )
    if state is None or state.registration is None:
        return failed("BATCH_NOT_FOUND", f"Batch '{command.batch_id}' is not registered")
    owner = state.registration.user_id
    if command.user_id is not None and owner is not None and command.user_id != owner:
        return failed("FORBIDDEN", f"User '{command.user_id}' does not own batch '{command.batch_id}'")
    try:
        resolution = resolve(catalog, command.requested_pipeline, state.completed_steps())
    except UnknownPipeline as exc:  # accepts() said yes; kept for a catalog changed under us
        return failed("UNKNOWN_PIPELINE", str(exc))
    return RequestOutcome(
        status="resolved",
        final_pipeline=resolution.final_pipeline,
        pruned_steps=resolution.pruned_steps,
        steps=resolution.steps,
        analysis_summary=summarize(command.batch_id, command.requested_pipeline, resolution),
        **base,
    )


def _envelope(
    topic: str,
    id_parts: str,
    payload: BaseModel,
    command: EventEnvelope[ClientBatchPipelineRequestV1],
    outcome: RequestOutcome,
) -> OutputEvent:
    data = command.data
    envelope = _OUTPUT_ENVELOPE(
        event_id=uuid.uuid5(OUTPUT_ID_NAMESPACE, f"{topic}|{data.client_correlation_id}|{id_parts}"),
        event_type=topic,
        # The stored outcome's time (the first command's), not this copy's: a client that retries a 503 with the
        # same X-Correlation-ID makes the gateway publish a new envelope, whose answer must be the same bytes.
        event_timestamp=outcome.requested_at,
        source_service=WORKER_SERVICE,
        correlation_id=command.correlation_id or data.client_correlation_id,
        data=payload,
    )
    return OutputEvent(topic=topic, key=data.batch_id, value=envelope.model_dump_json().encode("utf-8"))


def output_events(command: EventEnvelope[ClientBatchPipelineRequestV1], outcome: RequestOutcome) -> list[OutputEvent]:
    """Return the events announcing `outcome`, fully determined by the command and the outcome."""
    data = command.data
    common = {
        "batch_id": data.batch_id,
        "requested_pipeline": outcome.requested_pipeline,
        "client_correlation_id": outcome.client_correlation_id,
        "user_id": outcome.user_id,
    }
    if outcome.status == "failed":
        failure = PipelineResolutionFailedV1(
            reason_code=outcome.reason_code or "UNKNOWN", message=outcome.message or "", **common
        )
        return [_envelope(Topic.PIPELINE_RESOLUTION_FAILED, "failed", failure, command, outcome)]
    events = [
        _envelope(
            Topic.PHASE_SKIPPED,
            step,
            PhaseSkippedV1(
                batch_id=data.batch_id,
                phase_name=step,
                correlation_id=outcome.client_correlation_id,
                metadata=PhaseSkippedMetadata(entity_id=data.batch_id, timestamp=outcome.requested_at),
            ),
            command,
            outcome,
        )
        for step in outcome.pruned_steps
    ]
    resolved = BatchPipelineResolvedV1(
        final_pipeline=outcome.final_pipeline,
        steps=outcome.steps,
        pruned_steps=outcome.pruned_steps,
        analysis_summary=outcome.analysis_summary or "",
        **common,
    )
    events.append(_envelope(Topic.PIPELINE_RESOLVED, "resolved", resolved, command, outcome))
    return events
