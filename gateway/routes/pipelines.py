"""Pipeline requests: ask for a pipeline on a batch, follow one request to its outcome, list the catalog."""

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Path, Response

from contracts.commands import ClientBatchPipelineRequestV1
from gateway.deps import Call, admitted
from gateway.errors import BatchIdMismatch, BatchNotFound, UnknownPipelineRequested, safe_text
from gateway.models import (
    BATCH_ID_MAX_LENGTH,
    BATCH_ID_PATTERN,
    EXAMPLE_BATCH_ID,
    EXAMPLE_CORRELATION_ID,
    PipelineAccepted,
    PipelineCatalogView,
    PipelineInfo,
    PipelineRequestBody,
    PipelineRequestOutcome,
    outcome_view,
)
from gateway.openapi import problem_responses
from gateway.state_client import BatchOwner

router = APIRouter(prefix="/v1", tags=["pipelines"])

BatchId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=BATCH_ID_MAX_LENGTH,
        pattern=BATCH_ID_PATTERN,
        description="The batch id BOS registered (letters, digits and `._:-`, at most 255).",
        examples=[EXAMPLE_BATCH_ID],
    ),
]
CorrelationId = Annotated[
    UUID,
    Path(description="The `correlation_id` the POST answered with.", examples=[EXAMPLE_CORRELATION_ID]),
]
RequestBody = Annotated[
    PipelineRequestBody,
    Body(
        openapi_examples={
            "pipeline": {"summary": "Request a pipeline", "value": {"requested_pipeline": "ai_feedback"}},
            "step": {"summary": "A bare step (with its dependencies)", "value": {"requested_pipeline": "nlp"}},
            "retry": {
                "summary": "Retry a failed request",
                "value": {"requested_pipeline": "nlp", "is_retry": True, "retry_reason": "NLP service restarted"},
            },
            "unknown": {"summary": "An unknown pipeline (422)", "value": {"requested_pipeline": "spelcheck"}},
        }
    ),
]


def batch_url(batch_id: str) -> str:
    """Return the path of a batch's status."""
    return f"/v1/batches/{quote(batch_id, safe='')}/status"


def outcome_url(batch_id: str, correlation_id: UUID) -> str:
    """Return the path of one request's outcome."""
    return f"/v1/batches/{quote(batch_id, safe='')}/pipelines/{correlation_id}"


async def owned_batch(call: Call, batch_id: str, *, act: bool) -> BatchOwner:
    """Return the batch's owner; 404 when the batch is unknown, 403 when the caller may not read (or act on) it."""
    owner = await call.services.state.batch_owner(batch_id)
    if owner is None:
        raise BatchNotFound("No registered batch with this id.")
    call.services.authenticator.authorize(call.principal, owner.user_id, act=act)
    return owner


@router.post(
    "/batches/{batch_id}/pipelines",
    status_code=202,
    response_model=PipelineAccepted,
    summary="Request a pipeline for a batch",
    description=(
        "Validates the request, checks that the caller may act on the batch, and publishes a "
        "`ClientBatchPipelineRequestV1` command keyed by batch id. Answers 202 once the broker acknowledged it "
        "(acks=all). The command's `correlation_id` is the request's `X-Correlation-ID` when that is a UUID, "
        "else a fresh one; follow `status_url` to the outcome."
    ),
    responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 429, 502, 503),
)
async def request_pipeline(
    batch_id: BatchId,
    body: RequestBody,
    call: Annotated[Call, Depends(admitted("request_pipeline"))],
) -> Response:
    """Publish a pipeline request command for the batch."""
    if body.batch_id is not None and body.batch_id != batch_id:
        raise BatchIdMismatch("The body's batch_id differs from the batch id in the path.")
    catalog, ctx = call.services.catalog, call.context
    ctx.pipeline = body.requested_pipeline
    if not catalog.accepts(body.requested_pipeline):
        raise _unknown_pipeline(body.requested_pipeline, catalog.names, catalog.step_names)
    await owned_batch(call, batch_id, act=True)
    command = ClientBatchPipelineRequestV1(
        batch_id=batch_id,
        requested_pipeline=body.requested_pipeline,
        client_correlation_id=ctx.correlation_id,
        user_id=call.principal.sub,
        is_retry=body.is_retry,
        retry_reason=body.retry_reason,
        prompt_payload=body.prompt_payload,
    )
    await call.services.publisher.publish(command)
    call.services.push.announce_pending(batch_id, ctx.correlation_id)
    status_url = outcome_url(batch_id, ctx.correlation_id)
    accepted = PipelineAccepted(
        batch_id=batch_id,
        requested_pipeline=body.requested_pipeline,
        correlation_id=ctx.correlation_id,
        status_url=status_url,
        batch_status_url=batch_url(batch_id),
    )
    # The hot path: the model serialised once, here, instead of FastAPI validating it again against
    # response_model and merging a sub-response's headers (the document still declares PipelineAccepted).
    return Response(
        accepted.model_dump_json().encode(), 202, headers={"Location": status_url}, media_type="application/json"
    )


def _unknown_pipeline(requested: str, pipelines: list[str], steps: list[str]) -> UnknownPipelineRequested:
    detail = f"Unknown pipeline '{safe_text(requested)}'. Valid pipelines: {', '.join(pipelines)}."
    message = f"Must be one of: {', '.join(pipelines)} (or a step: {', '.join(steps)})."
    return UnknownPipelineRequested(
        detail,
        errors=[{"field": "requested_pipeline", "location": "body", "message": message, "type": "unknown_pipeline"}],
        extra={"valid_pipelines": pipelines, "valid_steps": steps},
    )


@router.get(
    "/batches/{batch_id}/pipelines/{correlation_id}",
    response_model=PipelineRequestOutcome,
    summary="Follow one pipeline request to its outcome",
    description=(
        "`pending` until the worker has recorded an outcome, then `resolved` (with the ordered steps to run) or "
        "`failed` (with `reason_code` and `message`). A correlation id the gateway never accepted also reads as "
        "`pending`: the gateway keeps no state, and the worker keeps the most recent requests of each batch."
    ),
    responses=problem_responses(401, 403, 404, 422, 429, 502, 503),
)
async def get_request_outcome(
    batch_id: BatchId,
    correlation_id: CorrelationId,
    call: Annotated[Call, Depends(admitted("request_outcome"))],
) -> PipelineRequestOutcome:
    """Return the outcome of one pipeline request."""
    await owned_batch(call, batch_id, act=False)
    outcome = await call.services.state.request_outcome(batch_id, correlation_id)
    return outcome_view(batch_id, correlation_id, outcome)


@router.get(
    "/pipelines",
    response_model=PipelineCatalogView,
    summary="List the pipelines a client may request",
    responses=problem_responses(401, 429),
)
async def list_pipelines(call: Annotated[Call, Depends(admitted("list_pipelines"))]) -> PipelineCatalogView:
    """Return every pipeline with its steps in run order, and every step name."""
    catalog = call.services.catalog
    return PipelineCatalogView(
        pipelines=[
            PipelineInfo(name=name, description=p.description, steps=[s.name for s in catalog.plan(name)])
            for name, p in catalog.pipelines.items()
        ],
        steps=catalog.step_names,
    )
