"""PURE: fold normalised completion events into a batch's state (idempotent and order-insensitive)."""

from contracts.state import (
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


def _newer(candidate: EssayOutcome, current: EssayOutcome | None) -> bool:
    return current is None or (candidate.at, candidate.ok) > (current.at, current.ok)


def apply_update(state: BatchState | None, update: BatchStateUpdate) -> BatchState:
    """Return the batch state after `update`; applying it twice, or in any order, gives the same state."""
    state = state or BatchState(batch_id=update.batch_id)
    registration = state.registration
    new = update.registration
    if new is not None and (registration is None or (new.at, new.event_id) > (registration.at, registration.event_id)):
        registration = new
    steps = state.steps
    if update.step is not None:
        outcomes = dict(steps.get(update.step, {}))
        changed = False
        for essays, ok in ((update.failed, False), (update.succeeded, True)):
            for essay_id in essays:
                candidate = EssayOutcome(at=update.at, ok=ok)
                if _newer(candidate, outcomes.get(essay_id)):
                    outcomes[essay_id] = candidate
                    changed = True
        if changed:
            steps = {**steps, update.step: outcomes}
    if registration is state.registration and steps is state.steps:
        return state
    return BatchState(batch_id=state.batch_id, registration=registration, steps=steps)


def record_request(requests: BatchRequests | None, batch_id: str, outcome: RequestOutcome) -> BatchRequests:
    """Return the batch's request log with `outcome` appended (bounded to the most recent ones)."""
    kept = list(requests.requests) if requests is not None else []
    kept = [r for r in kept if r.client_correlation_id != outcome.client_correlation_id]
    kept.append(outcome)
    return BatchRequests(batch_id=batch_id, requests=kept[-MAX_KEPT_REQUESTS:])


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
        registered=registration is not None,
        user_id=registration.user_id if registration else None,
        expected_essay_count=registration.expected_essay_count if registration else 0,
        essay_count=len(registration.essay_ids) if registration else 0,
        steps=[_progress(step, state) for step in steps],
        recent_requests=list(reversed(requests.requests)) if requests else [],
    )
