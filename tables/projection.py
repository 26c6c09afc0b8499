"""PURE: fold normalised completion events into a batch's state (idempotent and order-insensitive)."""

from collections.abc import Sequence

from contracts.state import (
    BatchChanges,
    BatchRequests,
    BatchState,
    BatchStateUpdate,
    BatchStatusView,
    EssayOutcome,
    RequestOutcome,
    StepProgress,
    StepStatus,
)

# A batch keeps this many recent requests; older ones drop off (the status view shows these).
MAX_KEPT_REQUESTS = 50


def apply_update(state: BatchState | None, update: BatchStateUpdate) -> BatchState:
    """Return the batch state after `update`; applying it twice, or in any order, gives the same state."""
    return apply_updates(state, (update,))


def apply_updates(state: BatchState | None, updates: Sequence[BatchStateUpdate]) -> BatchState:
    """Return the batch state after every update of one batch, in one pass (the same as applying each in turn).

    Returns `state` itself when nothing changes, so callers can skip the write.
    """
    state = state or BatchState(batch_id=updates[0].batch_id)
    registration = state.registration
    steps = state.steps
    changed: dict[str, dict[str, EssayOutcome]] = {}
    for update in updates:
        new = update.registration
        if new is not None and (
            registration is None or (new.at, new.event_id) > (registration.at, registration.event_id)
        ):
            registration = new
        if update.step is None:
            continue
        outcomes = changed.get(update.step)
        for essays, ok in ((update.failed, False), (update.succeeded, True)):
            candidate: EssayOutcome | None = None
            for essay_id in essays:
                current = (outcomes if outcomes is not None else steps.get(update.step, {})).get(essay_id)
                # Later `at` wins; on a tie success wins: the order events arrive in does not matter.
                if current is None or (update.at, ok) > (current.at, current.ok):
                    if outcomes is None:
                        outcomes = changed[update.step] = dict(steps.get(update.step, {}))
                    candidate = candidate or EssayOutcome(at=update.at, ok=ok)
                    outcomes[essay_id] = candidate
    if registration is state.registration and not changed:
        return state
    return BatchState(
        version=state.version, batch_id=state.batch_id, registration=registration, steps={**steps, **changed}
    )


def record_request(requests: BatchRequests | None, batch_id: str, outcome: RequestOutcome) -> BatchRequests:
    """Return the batch's request log with `outcome` appended (bounded to the most recent ones).

    The log's version becomes the outcome's; `dropped_through` remembers the newest version that fell off the
    list, so a reader resuming from an older version knows it cannot be given every outcome since.
    """
    kept = list(requests.requests) if requests is not None else []
    kept = [r for r in kept if r.client_correlation_id != outcome.client_correlation_id]
    kept.append(outcome)
    dropped = max((r.version for r in kept[:-MAX_KEPT_REQUESTS]), default=0)
    return BatchRequests(
        version=max(outcome.version, requests.version if requests else 0),
        batch_id=batch_id,
        requests=kept[-MAX_KEPT_REQUESTS:],
        dropped_through=max(dropped, requests.dropped_through if requests else 0),
    )


def next_version(state: BatchState | None, requests_version: int) -> int:
    """Return the batch's next version: one more than the highest version of its two rows."""
    return max(state.version if state else 0, requests_version) + 1


def _progress(step: str, state: BatchState) -> StepProgress:
    outcomes = state.steps.get(step, {})
    essays = state.registration.essay_ids if state.registration else tuple(outcomes)
    succeeded = sum(1 for e in essays if (o := outcomes.get(e)) is not None and o.ok)
    failed = sum(1 for e in essays if (o := outcomes.get(e)) is not None and not o.ok)
    pending = len(essays) - succeeded - failed
    if essays and succeeded == len(essays):
        status = StepStatus.COMPLETED
    elif failed and not pending:
        status = StepStatus.FAILED
    elif succeeded or failed:
        status = StepStatus.IN_PROGRESS
    else:
        status = StepStatus.NOT_STARTED
    return StepProgress(step=step, status=status, succeeded=succeeded, failed=failed, pending=pending)


def status_view(
    batch_id: str, state: BatchState | None, requests: BatchRequests | None, known_steps: list[str]
) -> BatchStatusView:
    """Return the client-facing view of a batch: per-step progress for known and seen steps, recent requests."""
    state = state or BatchState(batch_id=batch_id)
    registration = state.registration
    steps = list(dict.fromkeys([*known_steps, *state.steps]))
    return BatchStatusView(
        batch_id=batch_id,
        version=max(state.version, requests.version if requests else 0),
        registered=registration is not None,
        user_id=registration.user_id if registration else None,
        expected_essay_count=registration.expected_essay_count if registration else 0,
        essay_count=len(registration.essay_ids) if registration else 0,
        steps=[_progress(step, state) for step in steps],
        recent_requests=list(reversed(requests.requests)) if requests else [],
    )


def batch_changes(
    batch_id: str, state: BatchState | None, requests: BatchRequests | None, known_steps: list[str], changed_at: float
) -> BatchChanges:
    """Return the long-poll answer: the status view plus the versions the gateway derives events from."""
    return BatchChanges(
        status=status_view(batch_id, state, requests, known_steps),
        progress_version=state.version if state else 0,
        dropped_through=requests.dropped_through if requests else 0,
        changed_at=changed_at,
    )
