"""Batch status: the worker's projected state of one batch, for its owner (or an admin)."""

from typing import Annotated

from fastapi import APIRouter, Depends

from contracts.state import BatchStatusView
from gateway.deps import Call, admitted
from gateway.errors import BatchNotFound
from gateway.openapi import problem_responses
from gateway.routes.pipelines import BatchId

router = APIRouter(prefix="/v1", tags=["batches"])


@router.get(
    "/batches/{batch_id}/status",
    response_model=BatchStatusView,
    summary="Read a batch's state",
    description=(
        "Essays expected, per-step succeeded / failed / pending counts with a per-step status, and the batch's "
        "recent pipeline requests with their outcome, as the worker projects them."
    ),
    responses=problem_responses(401, 403, 404, 422, 429, 502, 503),
)
async def get_batch_status(
    batch_id: BatchId, call: Annotated[Call, Depends(admitted("batch_status"))]
) -> BatchStatusView:
    """Return the batch's projected state."""
    view = await call.services.state.batch_status(batch_id)
    if view is None:
        raise BatchNotFound("No registered batch with this id.")
    call.services.authenticator.authorize(call.principal, view.user_id)
    return view
