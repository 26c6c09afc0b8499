"""tables.projection: folding updates is order-insensitive and idempotent; request log and status view."""

import random
from functools import reduce
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.state import (
    BatchRequests,
    BatchState,
    BatchStateUpdate,
    EssayOutcome,
    RequestOutcome,
    StepProgress,
    StepStatus,
)
from tables.projection import MAX_KEPT_REQUESTS, apply_update, record_request, status_view
from tests.unit.factories import at, batch_state, registration, uuid_n

BATCH = "batch-1"
ESSAYS = ["e1", "e2", "e3"]
STEPS = ["spellcheck", "nlp"]


def _outcome_update(
    step: str, seconds: float, ok: tuple[str, ...] = (), failed: tuple[str, ...] = (), event: str = "ev"
) -> BatchStateUpdate:
    return BatchStateUpdate(
        batch_id=BATCH,
        source_topic="t",
        source_event_id=event,
        at=at(seconds),
        step=step,
        succeeded=ok,
        failed=failed,
    )


def _registration_update(
    essays: list[str], seconds: float, user_id: str | None = "teacher-42", event_id: str | None = None
) -> BatchStateUpdate:
    reg = registration(essays, user_id, seconds, event_id)
    return BatchStateUpdate(batch_id=BATCH, source_topic="r", source_event_id=reg.event_id, at=reg.at, registration=reg)


def fold(updates: list[BatchStateUpdate], state: BatchState | None = None) -> BatchState | None:
    """Apply `updates` in order, starting from `state`."""
    return reduce(apply_update, updates, state)


# ---- strategies -----------------------------------------------------------------------------------

_essay_sets = st.lists(st.sampled_from(ESSAYS), unique=True, max_size=len(ESSAYS)).map(tuple)
_seconds = st.integers(0, 4)  # few distinct moments: plenty of ties


@st.composite
def update_lists(draw: st.DrawFn) -> list[BatchStateUpdate]:
    """Draw registrations and step outcomes for one batch; one registration event id means one event."""
    registrations = [
        _registration_update(
            draw(st.lists(st.sampled_from(ESSAYS), unique=True)),
            draw(_seconds),
            user_id=draw(st.sampled_from(["teacher-42", "teacher-7", None])),
            event_id=f"reg-{i}",
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    outcomes = draw(
        st.lists(
            st.builds(
                _outcome_update,
                step=st.sampled_from(STEPS),
                seconds=_seconds,
                ok=_essay_sets,
                failed=_essay_sets,
            ),
            max_size=12,
        )
    )
    return [*registrations, *outcomes]


# ---- order-insensitive, idempotent ----------------------------------------------------------------


@given(update_lists(), st.randoms(use_true_random=False))
def test_any_permutation_folds_to_the_same_state(updates: list[BatchStateUpdate], rnd: random.Random) -> None:
    shuffled = rnd.sample(updates, len(updates))
    assert fold(shuffled) == fold(updates)


@given(update_lists(), st.randoms(use_true_random=False))
def test_duplicates_do_not_change_the_state(updates: list[BatchStateUpdate], rnd: random.Random) -> None:
    if not updates:
        return
    redelivered = updates + [rnd.choice(updates) for _ in range(rnd.randint(1, 2 * len(updates)))]
    rnd.shuffle(redelivered)
    assert fold(redelivered) == fold(updates)


@given(update_lists())
def test_reapplying_any_update_is_a_no_op(updates: list[BatchStateUpdate]) -> None:
    final = fold(updates)
    for update in updates:
        assert apply_update(final, update) == final


@given(update_lists())
def test_fold_equals_the_latest_outcome_per_essay(updates: list[BatchStateUpdate]) -> None:
    final = fold(updates)
    if not updates:
        assert final is None
        return
    assert final is not None
    expected: dict[str, dict[str, tuple[Any, bool]]] = {}
    for u in updates:
        for essays, ok in ((u.succeeded, True), (u.failed, False)):
            for essay in essays:
                per_step = expected.setdefault(u.step or "", {})
                per_step[essay] = max(per_step.get(essay, (u.at, ok)), (u.at, ok))  # later wins, success on ties
    assert {s: {e: (o.at, o.ok) for e, o in per.items()} for s, per in final.steps.items()} == expected
    regs = [u.registration for u in updates if u.registration is not None]
    assert final.registration == (max(regs, key=lambda r: (r.at, r.event_id)) if regs else None)
    if final.registration is None or not final.registration.essay_ids:
        assert final.completed_steps() == frozenset()
    else:
        essays = final.registration.essay_ids
        assert final.completed_steps() == {
            s for s, per in expected.items() if all(per.get(e, (None, False))[1] for e in essays)
        }


@given(update_lists())
def test_apply_update_never_mutates_its_input(updates: list[BatchStateUpdate]) -> None:
    state: BatchState | None = None
    for update in updates:
        before = state.model_dump() if state is not None else None
        new = apply_update(state, update)
        if state is not None:
            assert state.model_dump() == before
        state = new


# ---- examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("updates", "ok"),
    [
        pytest.param(
            [_outcome_update("spellcheck", 1, failed=("e1",)), _outcome_update("spellcheck", 2, ok=("e1",))],
            True,
            id="later-success-clears-earlier-failure",
        ),
        pytest.param(
            [_outcome_update("spellcheck", 2, ok=("e1",)), _outcome_update("spellcheck", 1, failed=("e1",))],
            True,
            id="earlier-failure-arriving-late-does-not-override",
        ),
        pytest.param(
            [_outcome_update("spellcheck", 1, ok=("e1",)), _outcome_update("spellcheck", 2, failed=("e1",))],
            False,
            id="later-failure-overrides-earlier-success",
        ),
        pytest.param(
            [_outcome_update("spellcheck", 2, failed=("e1",)), _outcome_update("spellcheck", 1, ok=("e1",))],
            False,
            id="earlier-success-arriving-late-does-not-override",
        ),
        pytest.param(
            [_outcome_update("spellcheck", 1, failed=("e1",)), _outcome_update("spellcheck", 1, ok=("e1",))],
            True,
            id="success-wins-a-tie",
        ),
        pytest.param(
            [_outcome_update("spellcheck", 1, ok=("e1",)), _outcome_update("spellcheck", 1, failed=("e1",))],
            True,
            id="success-wins-a-tie-either-arrival-order",
        ),
    ],
)
def test_latest_outcome_wins_by_time_not_arrival(updates: list[BatchStateUpdate], ok: bool) -> None:
    state = fold(updates)
    assert state is not None
    assert state.steps["spellcheck"]["e1"].ok is ok


def test_outcomes_before_registration_count_after_it() -> None:
    early = [_outcome_update("spellcheck", 1, ok=(e,)) for e in ESSAYS]
    state = fold([*early, _registration_update(ESSAYS, 5)])
    assert state is not None
    assert state.completed_steps() == {"spellcheck"}


def test_later_registration_replaces_earlier_in_any_order() -> None:
    first, second = _registration_update(["e1"], 1), _registration_update(ESSAYS, 2)
    outcomes = [_outcome_update("spellcheck", 3, ok=("e1",))]
    for order in ([first, second], [second, first]):
        state = fold([*order, *outcomes])
        assert state is not None and state.registration is not None
        assert state.registration.essay_ids == tuple(ESSAYS)
        assert state.completed_steps() == frozenset()  # e2 and e3 still missing


def test_first_update_creates_the_state_for_its_batch() -> None:
    state = apply_update(None, _outcome_update("nlp", 1, ok=("e1",)))
    assert state.batch_id == BATCH
    assert state.registration is None
    assert state.steps == {"nlp": {"e1": EssayOutcome(at=at(1), ok=True)}}


def test_update_without_essays_changes_nothing() -> None:
    state = batch_state(ESSAYS, {"spellcheck": {"e1": True}}, batch_id=BATCH)
    assert apply_update(state, _outcome_update("nlp", 1)) == state
    assert "nlp" not in apply_update(state, _outcome_update("nlp", 1)).steps


@pytest.mark.parametrize(
    ("essays", "outcomes", "completed"),
    [
        pytest.param(None, {"spellcheck": dict.fromkeys(ESSAYS, True)}, set(), id="unregistered"),
        pytest.param([], {"spellcheck": {}}, set(), id="registered-without-essays"),
        pytest.param(ESSAYS, {}, set(), id="nothing-reported"),
        pytest.param(ESSAYS, {"spellcheck": dict.fromkeys(ESSAYS, True)}, {"spellcheck"}, id="all-succeeded"),
        pytest.param(ESSAYS, {"spellcheck": {"e1": True, "e2": True}}, set(), id="one-missing"),
        pytest.param(ESSAYS, {"spellcheck": {"e1": True, "e2": True, "e3": False}}, set(), id="one-failed"),
        pytest.param(
            ESSAYS,
            {"spellcheck": {**dict.fromkeys(ESSAYS, True), "stranger": False}},
            {"spellcheck"},
            id="unregistered-essay-ignored",
        ),
        pytest.param(
            ESSAYS,
            {"spellcheck": dict.fromkeys(ESSAYS, True), "nlp": dict.fromkeys(ESSAYS, True), "cj": {"e1": True}},
            {"spellcheck", "nlp"},
            id="several-steps",
        ),
    ],
)
def test_completed_steps(essays: list[str] | None, outcomes: dict[str, dict[str, bool]], completed: set[str]) -> None:
    assert batch_state(essays, outcomes).completed_steps() == completed


# ---- request log ----------------------------------------------------------------------------------


def _request(n: int, status: str = "resolved", pipeline: str = "nlp") -> RequestOutcome:
    return RequestOutcome(
        client_correlation_id=uuid_n(n),
        requested_pipeline=pipeline,
        requested_at=at(n),
        status=status,  # type: ignore[arg-type]
    )


def test_record_request_starts_a_log() -> None:
    log = record_request(None, BATCH, _request(1))
    assert log == BatchRequests(batch_id=BATCH, requests=[_request(1)])


def test_record_request_appends_oldest_first() -> None:
    log = reduce(lambda acc, n: record_request(acc, BATCH, _request(n)), [1, 2, 3], None)
    assert log is not None
    assert [r.client_correlation_id for r in log.requests] == [uuid_n(1), uuid_n(2), uuid_n(3)]
    assert log.find(uuid_n(2)) == _request(2)
    assert log.find(uuid_n(9)) is None


def test_record_request_dedupes_by_correlation_id_keeping_the_latest() -> None:
    log = record_request(None, BATCH, _request(1, "failed"))
    log = record_request(log, BATCH, _request(2))
    log = record_request(log, BATCH, _request(1, "resolved", pipeline="ai_feedback"))
    assert [(r.client_correlation_id, r.status) for r in log.requests] == [
        (uuid_n(2), "resolved"),
        (uuid_n(1), "resolved"),
    ]
    found = log.find(uuid_n(1))
    assert found is not None and found.requested_pipeline == "ai_feedback"


def test_record_request_keeps_at_most_the_most_recent() -> None:
    total = MAX_KEPT_REQUESTS + 7
    log = None
    for n in range(total):
        log = record_request(log, BATCH, _request(n))
    assert log is not None
    assert len(log.requests) == MAX_KEPT_REQUESTS
    assert [r.client_correlation_id for r in log.requests] == [uuid_n(n) for n in range(7, total)]


@given(st.lists(st.integers(0, 70), max_size=150))
def test_record_request_log_is_bounded_unique_and_ends_with_the_latest(ids: list[int]) -> None:
    log = None
    for n in ids:
        log = record_request(log, BATCH, _request(n))
    if not ids:
        return
    assert log is not None
    kept = [r.client_correlation_id for r in log.requests]
    assert len(kept) == len(set(kept)) <= MAX_KEPT_REQUESTS
    assert kept[-1] == uuid_n(ids[-1])
    latest_first = list(dict.fromkeys(reversed(ids)))  # each id's most recent request, newest first
    assert kept == [uuid_n(n) for n in reversed(latest_first[:MAX_KEPT_REQUESTS])]


# ---- status view ----------------------------------------------------------------------------------


def _progress(step: str, status: StepStatus, succeeded: int, failed: int, pending: int) -> StepProgress:
    return StepProgress(step=step, status=status, succeeded=succeeded, failed=failed, pending=pending)


@pytest.mark.parametrize(
    ("essays", "outcomes", "expected"),
    [
        pytest.param(ESSAYS, {}, (StepStatus.NOT_STARTED, 0, 0, 3), id="not-started"),
        pytest.param(ESSAYS, {"e1": True}, (StepStatus.IN_PROGRESS, 1, 0, 2), id="in-progress"),
        pytest.param(ESSAYS, {"e1": False}, (StepStatus.IN_PROGRESS, 0, 1, 2), id="failure-with-pending"),
        pytest.param(ESSAYS, dict.fromkeys(ESSAYS, True), (StepStatus.COMPLETED, 3, 0, 0), id="completed"),
        pytest.param(
            ESSAYS, {"e1": True, "e2": True, "e3": False}, (StepStatus.FAILED, 2, 1, 0), id="failed-when-all-in"
        ),
        pytest.param(ESSAYS, dict.fromkeys(ESSAYS, False), (StepStatus.FAILED, 0, 3, 0), id="all-failed"),
        pytest.param(
            ESSAYS, {"e1": True, "stranger": True}, (StepStatus.IN_PROGRESS, 1, 0, 2), id="unregistered-ignored"
        ),
        pytest.param(None, {"e1": True, "e2": False}, (StepStatus.FAILED, 1, 1, 0), id="unregistered-batch"),
        pytest.param(None, {"e1": True}, (StepStatus.COMPLETED, 1, 0, 0), id="unregistered-all-ok"),
        pytest.param(None, {}, (StepStatus.NOT_STARTED, 0, 0, 0), id="unregistered-nothing"),
    ],
)
def test_status_view_step_progress(
    essays: list[str] | None, outcomes: dict[str, bool], expected: tuple[StepStatus, int, int, int]
) -> None:
    state = batch_state(essays, {"spellcheck": outcomes} if outcomes else {}, batch_id=BATCH)
    view = status_view(BATCH, state, None, ["spellcheck"])
    assert view.steps == [_progress("spellcheck", *expected)]


def test_status_view_of_a_registered_batch() -> None:
    state = batch_state(
        ESSAYS,
        {"spellcheck": {"e1": True, "e2": True, "e3": False}, "nlp": {"e1": True}, "custom": {"e2": True}},
        batch_id=BATCH,
    )
    requests = BatchRequests(batch_id=BATCH, requests=[_request(1), _request(2, "failed")])
    view = status_view(BATCH, state, requests, ["spellcheck", "nlp", "ai_feedback"])
    assert view.registered is True
    assert view.user_id == "teacher-42"
    assert view.expected_essay_count == 3
    assert view.essay_count == 3
    assert view.steps == [
        _progress("spellcheck", StepStatus.FAILED, 2, 1, 0),
        _progress("nlp", StepStatus.IN_PROGRESS, 1, 0, 2),
        _progress("ai_feedback", StepStatus.NOT_STARTED, 0, 0, 3),
        _progress("custom", StepStatus.IN_PROGRESS, 1, 0, 2),  # seen in state, after the known steps
    ]
    assert view.recent_requests == [_request(2, "failed"), _request(1)]  # newest first


def test_status_view_of_an_unknown_batch() -> None:
    view = status_view(BATCH, None, None, ["spellcheck", "nlp"])
    assert view.batch_id == BATCH
    assert view.registered is False
    assert view.user_id is None
    assert (view.expected_essay_count, view.essay_count) == (0, 0)
    assert view.steps == [
        _progress("spellcheck", StepStatus.NOT_STARTED, 0, 0, 0),
        _progress("nlp", StepStatus.NOT_STARTED, 0, 0, 0),
    ]
    assert view.recent_requests == []


@given(update_lists())
def test_status_view_counts_add_up(updates: list[BatchStateUpdate]) -> None:
    state = fold(updates)
    view = status_view(BATCH, state, None, STEPS)
    completed = state.completed_steps() if state is not None else frozenset()
    assert [p.step for p in view.steps][: len(STEPS)] == STEPS
    for progress in view.steps:
        assert min(progress.succeeded, progress.failed, progress.pending) >= 0
        if view.registered:
            assert progress.succeeded + progress.failed + progress.pending == view.essay_count
            assert (progress.status == StepStatus.COMPLETED) == (progress.step in completed)
