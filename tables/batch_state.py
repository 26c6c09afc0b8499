"""The worker's changelog-backed tables and the model <-> JSON helpers around them."""

from typing import Any

from contracts.state import BatchRequests, BatchState
from streams.app import app

# Table names are wire names (their changelog topics): renaming one loses state.
# Keys are the batch id's raw UTF-8 bytes, exactly the message key of every co-partitioned topic: with a
# str key type Faust would JSON-encode keys ('"b1"'), and @app.table_route would hash those bytes to a
# different partition than the one holding the batch, answering 404 from the wrong worker.
batch_state = app.Table("batch_state", key_type=bytes, default=None, help="BatchState per batch id")
pipeline_requests = app.Table(
    "pipeline_requests", key_type=bytes, default=None, help="recent RequestOutcomes per batch id"
)


def read_state(batch_id: str) -> BatchState | None:
    """Return the batch's state from the local store, if any."""
    raw: Any = batch_state.get(batch_id.encode())
    return BatchState.model_validate(raw) if raw is not None else None


def write_state(state: BatchState) -> None:
    """Store the batch's state (inside stream iteration, so it reaches the changelog)."""
    batch_state[state.batch_id.encode()] = state.model_dump(mode="json")


def read_requests(batch_id: str) -> BatchRequests | None:
    """Return the batch's recent request outcomes, if any."""
    raw: Any = pipeline_requests.get(batch_id.encode())
    return BatchRequests.model_validate(raw) if raw is not None else None


def write_requests(requests: BatchRequests) -> None:
    """Store the batch's request outcomes (inside stream iteration)."""
    pipeline_requests[requests.batch_id.encode()] = requests.model_dump(mode="json")
