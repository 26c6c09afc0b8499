"""The worker's changelog-backed tables and the model <-> JSON helpers around them."""

from typing import Any

from contracts.state import BatchRequests, BatchState
from streams.app import app

# Table names are wire names (their changelog topics): renaming one loses state.
batch_state = app.Table("batch_state", key_type=str, default=None, help="BatchState per batch id")
pipeline_requests = app.Table(
    "pipeline_requests", key_type=str, default=None, help="recent RequestOutcomes per batch id"
)


def read_state(batch_id: str) -> BatchState | None:
    """Return the batch's state from the local store, if any."""
    raw: Any = batch_state.get(batch_id)
    return BatchState.model_validate(raw) if raw is not None else None


def write_state(state: BatchState) -> None:
    """Store the batch's state (inside stream iteration, so it reaches the changelog)."""
    batch_state[state.batch_id] = state.model_dump(mode="json")


def read_requests(batch_id: str) -> BatchRequests | None:
    """Return the batch's recent request outcomes, if any."""
    raw: Any = pipeline_requests.get(batch_id)
    return BatchRequests.model_validate(raw) if raw is not None else None


def write_requests(requests: BatchRequests) -> None:
    """Store the batch's request outcomes (inside stream iteration)."""
    pipeline_requests[requests.batch_id] = requests.model_dump(mode="json")
