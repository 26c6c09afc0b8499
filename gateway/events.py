"""No I/O: turn the worker's long-poll answers into server-sent events for one stream, given where it stands.

Event ids are batch versions. A stream that stands at version `cursor` is given, from a newer answer, the request
outcomes recorded after `cursor` (oldest first, each with its own version) and the step progress if it changed;
it is given a snapshot instead when it has no cursor, when its cursor is ahead of the worker's version (a rebuilt
store), or when outcomes recorded after it may have dropped off the worker's bounded list (a gap).
"""

from dataclasses import dataclass, field
from functools import cached_property
from uuid import UUID

from fastapi.sse import format_sse_event

from contracts.state import BatchChanges, StepProgress
from gateway.models import BatchProgressEvent, PipelineRequestOutcome, outcome_view

HEARTBEAT = b": heartbeat\n\n"


class Changes:
    """One long-poll answer, shared by every stream of the batch; each payload is serialised once, when first sent."""

    def __init__(self, changes: BatchChanges) -> None:
        self.changes = changes
        self.status = changes.status
        self.version = changes.status.version
        self._requests: dict[UUID, bytes] = {}

    @cached_property
    def snapshot(self) -> bytes:
        return frame("snapshot", self.version, self.status.model_dump_json())

    @cached_property
    def progress(self) -> bytes:
        body = BatchProgressEvent(batch_id=self.status.batch_id, steps=self.status.steps)
        return frame("progress", self.changes.progress_version, body.model_dump_json())

    def request(self, correlation_id: UUID) -> bytes:
        cached = self._requests.get(correlation_id)
        if cached is None:
            outcome = next(r for r in self.status.recent_requests if r.client_correlation_id == correlation_id)
            view = outcome_view(self.status.batch_id, correlation_id, outcome)
            cached = self._requests[correlation_id] = frame("request", outcome.version, view.model_dump_json())
        return cached


def frame(event: str, version: int, data: str) -> bytes:
    """Return one event in the text/event-stream wire format (`data` is one line of JSON)."""
    return format_sse_event(event=event, id=str(version), data_str=data)


def pending_frame(view: PipelineRequestOutcome, version: int) -> bytes:
    """Return the `request` event of a request this gateway has just accepted (its outcome is not recorded yet)."""
    return frame("request", version, view.model_dump_json())


@dataclass
class StreamPosition:
    """Where one stream stands: the last version it was given, and the step progress it last saw."""

    cursor: int | None = None
    steps: list[StepProgress] | None = None
    resolved: set[UUID] = field(default_factory=set)

    def advance(self, changes: Changes) -> list[bytes]:
        """Return the events that bring the stream from its cursor to `changes`, and move the cursor there."""
        status, cursor = changes.status, self.cursor
        if cursor == changes.version:
            return []
        self.resolved = {r.client_correlation_id for r in status.recent_requests}
        if cursor is None or cursor > changes.version or cursor < changes.changes.dropped_through:
            self.cursor, self.steps = changes.version, status.steps
            return [changes.snapshot]
        ordered: list[tuple[int, bytes]] = [
            (r.version, changes.request(r.client_correlation_id))
            for r in reversed(status.recent_requests)  # newest first in the status: oldest first on the wire
            if r.version > cursor
        ]
        if changes.changes.progress_version > cursor and status.steps != self.steps:
            ordered.append((changes.changes.progress_version, changes.progress))
        ordered.sort(key=lambda item: item[0])
        self.cursor, self.steps = changes.version, status.steps
        return [data for _, data in ordered]
