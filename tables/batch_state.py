"""The worker's changelog-backed tables and the model <-> JSON helpers around them."""

import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust import streams as faust_streams
from faust.types import EventT

from contracts.state import BatchRequests, BatchState
from streams.app import app
from tables.changes import feed

# Table names are wire names (their changelog topics): renaming one loses state.
# Keys are the batch id's raw UTF-8 bytes, exactly the message key of every co-partitioned topic: with a
# str key type Faust would JSON-encode keys ('"b1"'), and @app.table_route would hash those bytes to a
# different partition than the one holding the batch, answering 404 from the wrong worker.
# Values are the models' JSON bytes, serialized once by pydantic: with Faust's json codec every write was
# dumped to a dict, then JSON-encoded twice (store and changelog) in Python. The changelog still carries plain
# JSON objects, so records written either way read back alike.
batch_state = app.Table(
    "batch_state", key_type=bytes, value_type=bytes, default=None, help="BatchState per batch id"
)
pipeline_requests = app.Table(
    "pipeline_requests", key_type=bytes, value_type=bytes, default=None, help="recent RequestOutcomes per batch id"
)


@contextmanager
def event_context(event: EventT[Any]) -> Iterator[None]:
    """Make `event` the current event, as Faust's stream iteration does for one event at a time.

    Faust picks a table write's changelog partition and store from the current event. Inside
    `stream.take_events()` the agent holds a list of events and none is current, so a grouped write names the
    event whose partition owns the key (Faust 0.15 keeps that event in a private context variable).
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def read_state(batch_id: str) -> BatchState | None:
    """Return the batch's state from the local store, if any."""
    raw: Any = batch_state.get(batch_id.encode())
    return BatchState.model_validate_json(raw) if raw is not None else None


def write_state(state: BatchState) -> None:
    """Store the batch's state (inside stream iteration or an event_context, so it reaches the changelog)."""
    batch_state[state.batch_id.encode()] = state.model_dump_json().encode()
    feed.notify(state.batch_id)


def read_requests(batch_id: str) -> BatchRequests | None:
    """Return the batch's recent request outcomes, if any."""
    raw: Any = pipeline_requests.get(batch_id.encode())
    return BatchRequests.model_validate_json(raw) if raw is not None else None


def write_requests(requests: BatchRequests) -> None:
    """Store the batch's request outcomes (inside stream iteration or an event_context)."""
    pipeline_requests[requests.batch_id.encode()] = requests.model_dump_json().encode()
    feed.notify(requests.batch_id)


_VERSION_PREFIX = re.compile(rb'\{"version":(\d+)[,}]')


def _peek_version(raw: Any, model: type[BatchState] | type[BatchRequests]) -> int:
    """Return a stored row's version without parsing it (rows are written with `version` first)."""
    if raw is None:
        return 0
    found = _VERSION_PREFIX.match(raw)
    return int(found.group(1)) if found else model.model_validate_json(raw).version


def state_version(batch_id: str) -> int:
    """Return the version of the batch's `batch_state` row (0 if none)."""
    return _peek_version(batch_state.get(batch_id.encode()), BatchState)


def requests_version(batch_id: str) -> int:
    """Return the version of the batch's `pipeline_requests` row (0 if none)."""
    return _peek_version(pipeline_requests.get(batch_id.encode()), BatchRequests)


def batch_version(batch_id: str) -> int:
    """Return the batch's version: the higher of its two rows' versions."""
    return max(state_version(batch_id), requests_version(batch_id))
