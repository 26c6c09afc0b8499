"""streams.resolution: request outcomes (failures, ownership, pruning) and the events that announce them."""

import json
import uuid
from datetime import datetime
from typing import Any

import pytest

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import WORKER_SERVICE, EventEnvelope
from contracts.events import BatchPipelineResolvedV1, PhaseSkippedV1, PipelineResolutionFailedV1
from contracts.pipelines import PipelineCatalog, PipelineStep, UnknownPipeline
from contracts.state import BatchState, RequestOutcome
from contracts.topics import Topic
from streams.decoding import decode_command, decode_completion
from streams.resolution import Resolution, output_events, resolve, resolve_request, summarize
from tables.projection import apply_update
from tests.unit.factories import at, batch_state, sample_bytes, shipped_catalog, uuid_n

ESSAYS = ["essay-a", "essay-b", "essay-c"]
ALL_OK = dict.fromkeys(ESSAYS, True)
CCID = uuid_n(7)
ENVELOPE_CORRELATION = uuid_n(8)


def _command(
    pipeline: str = "ai_feedback", user_id: str | None = "teacher-42", **fields: Any
) -> ClientBatchPipelineRequestV1:
    return ClientBatchPipelineRequestV1(
        batch_id="batch-1", requested_pipeline=pipeline, client_correlation_id=CCID, user_id=user_id, **fields
    )


def _envelope(
    command: ClientBatchPipelineRequestV1, correlation_id: uuid.UUID | None = ENVELOPE_CORRELATION
) -> EventEnvelope[ClientBatchPipelineRequestV1]:
    return EventEnvelope[ClientBatchPipelineRequestV1](
        event_id=uuid_n(1),
        event_type=Topic.PIPELINE_COMMAND,
        event_timestamp=at(60),
        source_service="api_gateway_service",
        correlation_id=correlation_id,
        data=command,
    )


def _outcome(command: ClientBatchPipelineRequestV1, state: BatchState | None) -> RequestOutcome:
    return resolve_request(shipped_catalog(), command, at(60), state)


# ---- failures and ownership -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "state", "code", "message"),
    [
        pytest.param(
            _command("ghost"),
            batch_state(ESSAYS),
            "UNKNOWN_PIPELINE",
            "Unknown pipeline 'ghost'; valid pipelines: spellcheck, nlp, cj_assessment, ai_feedback, comprehensive",
            id="unknown-pipeline",
        ),
        pytest.param(_command(), None, "BATCH_NOT_FOUND", "Batch 'batch-1' is not registered", id="no-state"),
        pytest.param(
            _command(),
            batch_state(None, {"spellcheck": ALL_OK}),
            "BATCH_NOT_FOUND",
            "Batch 'batch-1' is not registered",
            id="outcomes-but-no-registration",
        ),
        pytest.param(
            _command(user_id="intruder"),
            batch_state(ESSAYS, user_id="teacher-42"),
            "FORBIDDEN",
            "User 'intruder' does not own batch 'batch-1'",
            id="not-the-owner",
        ),
    ],
)
def test_failed_outcomes(
    command: ClientBatchPipelineRequestV1, state: BatchState | None, code: str, message: str
) -> None:
    outcome = _outcome(command, state)
    assert outcome.status == "failed"
    assert outcome.reason_code == code
    assert outcome.message == message
    assert outcome.final_pipeline == outcome.pruned_steps == outcome.steps == []
    assert outcome.client_correlation_id == CCID
    assert outcome.requested_at == at(60)


@pytest.mark.parametrize(
    ("command_user", "owner"),
    [
        pytest.param(None, "teacher-42", id="older-generation-command-without-user"),
        pytest.param("anyone", None, id="batch-without-owner"),
        pytest.param(None, None, id="neither"),
        pytest.param("teacher-42", "teacher-42", id="the-owner"),
    ],
)
def test_ownership_passes(command_user: str | None, owner: str | None) -> None:
    outcome = _outcome(_command(user_id=command_user), batch_state(ESSAYS, user_id=owner))
    assert outcome.status == "resolved"
    assert outcome.reason_code is None
    assert outcome.user_id == command_user


def test_catalog_changed_between_accept_and_plan_fails_as_unknown_pipeline() -> None:
    class StaleCatalog(PipelineCatalog):
        def plan(self, requested: str) -> list[PipelineStep]:
            raise UnknownPipeline(f"Unknown pipeline '{requested}'; valid pipelines: none")

    stale = StaleCatalog(pipelines=shipped_catalog().pipelines)
    outcome = resolve_request(stale, _command(), at(60), batch_state(ESSAYS))
    assert (outcome.status, outcome.reason_code) == ("failed", "UNKNOWN_PIPELINE")
    assert outcome.message == "Unknown pipeline 'ai_feedback'; valid pipelines: none"


# ---- pruning --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "final", "pruned"),
    [
        pytest.param({}, ["spellcheck", "nlp", "ai_feedback"], [], id="fresh-batch"),
        pytest.param({"spellcheck": ALL_OK}, ["nlp", "ai_feedback"], ["spellcheck"], id="spellcheck-done"),
        pytest.param(
            {"spellcheck": {"essay-a": True, "essay-b": True}},
            ["spellcheck", "nlp", "ai_feedback"],
            [],
            id="spellcheck-done-for-some-essays",
        ),
        pytest.param(
            {"spellcheck": {**ALL_OK, "essay-c": False}},
            ["spellcheck", "nlp", "ai_feedback"],
            [],
            id="spellcheck-failed-for-one-essay",
        ),
        pytest.param(
            {"spellcheck": ALL_OK, "nlp": ALL_OK, "cj_assessment": ALL_OK},
            ["ai_feedback"],
            ["spellcheck", "nlp"],
            id="steps-outside-the-pipeline-ignored",
        ),
        pytest.param(
            {"spellcheck": ALL_OK, "nlp": ALL_OK, "ai_feedback": ALL_OK},
            [],
            ["spellcheck", "nlp", "ai_feedback"],
            id="everything-done",
        ),
    ],
)
def test_ai_feedback_resolution(outcomes: dict[str, dict[str, bool]], final: list[str], pruned: list[str]) -> None:
    outcome = _outcome(_command(), batch_state(ESSAYS, outcomes))
    assert outcome.status == "resolved"
    assert outcome.final_pipeline == final
    assert outcome.pruned_steps == pruned
    assert [s.name for s in outcome.steps] == final
    assert outcome.steps == [s for s in shipped_catalog().plan("ai_feedback") if s.name in final]


def test_everything_done_resolves_with_a_summary_saying_nothing_to_run() -> None:
    state = batch_state(ESSAYS, {"spellcheck": ALL_OK, "nlp": ALL_OK, "ai_feedback": ALL_OK})
    outcome = _outcome(_command(), state)
    assert outcome.status == "resolved"
    assert outcome.reason_code is None
    assert outcome.final_pipeline == []
    assert outcome.analysis_summary == (
        "All steps of 'ai_feedback' are already complete for batch 'batch-1' "
        "(spellcheck, nlp, ai_feedback): nothing to run."
    )


def test_outcome_carries_the_request() -> None:
    outcome = _outcome(_command(is_retry=True, retry_reason="again"), batch_state(ESSAYS))
    assert outcome.client_correlation_id == CCID
    assert outcome.requested_pipeline == "ai_feedback"
    assert outcome.user_id == "teacher-42"
    assert outcome.is_retry is True
    assert outcome.requested_at == at(60)


def test_bare_step_request_resolves_to_the_step_and_its_dependencies() -> None:
    outcome = _outcome(_command("nlp"), batch_state(ESSAYS, {"spellcheck": ALL_OK}))
    assert (outcome.final_pipeline, outcome.pruned_steps) == (["nlp"], ["spellcheck"])


@pytest.mark.parametrize(
    ("resolution", "summary"),
    [
        (
            Resolution(final_pipeline=["spellcheck", "nlp"], pruned_steps=[], steps=[]),
            "Pipeline 'nlp' for batch 'b': 2 step(s) to run (spellcheck -> nlp).",
        ),
        (
            Resolution(final_pipeline=["nlp"], pruned_steps=["spellcheck"], steps=[]),
            "Pipeline 'nlp' for batch 'b': 1 step(s) to run (nlp); 1 already complete and pruned (spellcheck).",
        ),
        (
            Resolution(final_pipeline=[], pruned_steps=["spellcheck", "nlp"], steps=[]),
            "All steps of 'nlp' are already complete for batch 'b' (spellcheck, nlp): nothing to run.",
        ),
    ],
)
def test_summarize(resolution: Resolution, summary: str) -> None:
    assert summarize("b", "nlp", resolution) == summary


def test_resolve_raises_for_unknown_name() -> None:
    with pytest.raises(UnknownPipeline):
        resolve(shipped_catalog(), "ghost", frozenset())


# ---- the samples, end to end ----------------------------------------------------------------------

SAMPLE_FEEDS = {
    "2025": [
        (Topic.BATCH_REGISTERED, "registered"),
        (Topic.SPELLCHECK_COMPLETED, "spellcheck_success_essay-a"),
        (Topic.SPELLCHECK_COMPLETED, "spellcheck_success_essay-b"),
        (Topic.SPELLCHECK_COMPLETED, "spellcheck_failed_essay-c"),
        (Topic.CJ_ASSESSMENT_COMPLETED, "cj_assessment_completed"),
    ],
    "2026": [
        (Topic.BATCH_REGISTERED, "registered"),
        (Topic.SPELLCHECK_COMPLETED, "spellcheck_success_essay-a"),
        (Topic.SPELLCHECK_COMPLETED, "spellcheck_success_essay-b"),
        (Topic.SPELLCHECK_COMPLETED, "spellcheck_failed_essay-c"),
        (Topic.CJ_ASSESSMENT_COMPLETED, "cj_assessment_completed"),
        (Topic.ELS_PHASE_OUTCOME, "els_phase_outcome_nlp"),
    ],
}


@pytest.mark.parametrize(
    ("gen", "completed", "final", "pruned"),
    [
        # 2025: essay-c failed spellcheck; CJ rankings cover every essay.
        ("2025", {"cj_assessment"}, ["spellcheck", "nlp", "ai_feedback"], []),
        # 2026: essay-c failed spellcheck and CJ; ELS reports nlp done for all three.
        ("2026", {"nlp"}, ["spellcheck", "ai_feedback"], ["nlp"]),
    ],
)
def test_sample_batch_resolves(gen: str, completed: set[str], final: list[str], pruned: list[str]) -> None:
    state = None
    for topic, name in SAMPLE_FEEDS[gen]:
        state = apply_update(state, decode_completion(topic, sample_bytes(gen, name)))
    assert state is not None and state.completed_steps() == completed
    command = decode_command(sample_bytes(gen, "client_pipeline_request"))
    outcome = resolve_request(shipped_catalog(), command.data, command.event_timestamp, state)
    assert (outcome.status, outcome.final_pipeline, outcome.pruned_steps) == ("resolved", final, pruned)


# ---- output events --------------------------------------------------------------------------------


def _events(state: BatchState | None, command: ClientBatchPipelineRequestV1 | None = None, **kw: Any) -> list[Any]:
    command = command or _command()
    envelope = _envelope(command, **kw)
    return output_events(envelope, resolve_request(shipped_catalog(), command, envelope.event_timestamp, state))


def _values(events: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(e.value) for e in events]


ENVELOPE_KEYS = {
    "event_id",
    "event_type",
    "event_timestamp",
    "source_service",
    "schema_version",
    "correlation_id",
    "data_schema_uri",
    "data",
    "metadata",
}


def test_resolved_with_pruning_emits_one_skipped_per_pruned_step_then_resolved() -> None:
    events = _events(batch_state(ESSAYS, {"spellcheck": ALL_OK}))
    assert [e.topic for e in events] == [Topic.PHASE_SKIPPED, Topic.PIPELINE_RESOLVED]
    assert {e.key for e in events} == {"batch-1"}
    skipped, resolved = _values(events)
    assert skipped["data"] == {
        "event": "batch.phase.skipped",
        "batch_id": "batch-1",
        "phase_name": "spellcheck",
        "skip_reason": "already_completed",
        "storage_id": None,
        "correlation_id": str(CCID),
        "metadata": {
            "entity_id": "batch-1",
            "entity_type": "batch",
            "parent_id": None,
            "timestamp": "2026-03-01T12:01:00Z",
        },
    }
    assert set(resolved["data"]) == {
        "batch_id",
        "requested_pipeline",
        "client_correlation_id",
        "user_id",
        "final_pipeline",
        "steps",
        "pruned_steps",
        "analysis_summary",
    }
    assert resolved["data"]["final_pipeline"] == ["nlp", "ai_feedback"]
    assert resolved["data"]["pruned_steps"] == ["spellcheck"]
    assert [s["name"] for s in resolved["data"]["steps"]] == ["nlp", "ai_feedback"]
    assert resolved["data"]["steps"][1] == {
        "name": "ai_feedback",
        "service_name": "ai_feedback_service",
        "event_type": "huleedu.batch.ai_feedback.initiate.command.v1",
        "event_data_model": "BatchServiceAIFeedbackInitiateCommandDataV1",
        "depends_on": ["spellcheck", "nlp"],
    }
    assert resolved["data"]["client_correlation_id"] == str(CCID)
    assert resolved["data"]["user_id"] == "teacher-42"


def test_everything_done_emits_every_skip_and_an_empty_resolution() -> None:
    events = _events(batch_state(ESSAYS, {"spellcheck": ALL_OK, "nlp": ALL_OK, "ai_feedback": ALL_OK}))
    assert [e.topic for e in events] == [Topic.PHASE_SKIPPED] * 3 + [Topic.PIPELINE_RESOLVED]
    *skipped, resolved = _values(events)
    assert [s["data"]["phase_name"] for s in skipped] == ["spellcheck", "nlp", "ai_feedback"]
    assert resolved["data"]["final_pipeline"] == resolved["data"]["steps"] == []
    assert "nothing to run" in resolved["data"]["analysis_summary"]


def test_failure_emits_one_failed_event() -> None:
    events = _events(None)
    assert [(e.topic, e.key) for e in events] == [(Topic.PIPELINE_RESOLUTION_FAILED, "batch-1")]
    assert _values(events)[0]["data"] == {
        "batch_id": "batch-1",
        "requested_pipeline": "ai_feedback",
        "client_correlation_id": str(CCID),
        "user_id": "teacher-42",
        "reason_code": "BATCH_NOT_FOUND",
        "message": "Batch 'batch-1' is not registered",
    }


@pytest.mark.parametrize(
    ("state", "models"),
    [
        pytest.param(batch_state(ESSAYS, {"spellcheck": ALL_OK}), [PhaseSkippedV1, BatchPipelineResolvedV1], id="ok"),
        pytest.param(None, [PipelineResolutionFailedV1], id="failed"),
    ],
)
def test_every_event_is_a_valid_worker_envelope(state: BatchState | None, models: list[type[Any]]) -> None:
    events = _events(state)
    for event, model in zip(events, models, strict=True):
        raw = json.loads(event.value)
        assert set(raw) == ENVELOPE_KEYS
        envelope = EventEnvelope[model].model_validate_json(event.value)  # type: ignore[valid-type]
        assert envelope.event_type == event.topic
        assert envelope.source_service == WORKER_SERVICE == "batch_conductor_service"
        assert envelope.schema_version == 1
        assert envelope.event_timestamp == at(60)  # the command's, not a clock reading
        assert envelope.correlation_id == ENVELOPE_CORRELATION
        assert envelope.event_id.version == 5


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(batch_state(ESSAYS, {"spellcheck": ALL_OK, "nlp": ALL_OK}), id="resolved"),
        pytest.param(None, id="failed"),
    ],
)
def test_output_events_are_byte_identical_on_redelivery(state: BatchState | None) -> None:
    first = _events(state)
    assert _events(state) == first
    envelope = _envelope(_command())
    outcome = resolve_request(shipped_catalog(), _command(), envelope.event_timestamp, state)
    assert output_events(envelope, outcome) == output_events(envelope, outcome) == first


def test_event_ids_are_uuid5_distinct_per_topic_and_step_and_per_request() -> None:
    state = batch_state(ESSAYS, {"spellcheck": ALL_OK, "nlp": ALL_OK})
    ids = [uuid.UUID(v["event_id"]) for v in _values(_events(state))]
    assert len(ids) == len(set(ids)) == 3
    assert all(i.version == 5 for i in ids)
    other = ClientBatchPipelineRequestV1(
        batch_id="batch-1", requested_pipeline="ai_feedback", client_correlation_id=uuid_n(99), user_id="teacher-42"
    )
    other_ids = [uuid.UUID(v["event_id"]) for v in _values(_events(state, other))]
    assert not set(ids) & set(other_ids)
    failed_id = uuid.UUID(_values(_events(None))[0]["event_id"])
    assert failed_id not in ids


def test_event_id_does_not_depend_on_the_command_envelope_id() -> None:
    state = batch_state(ESSAYS)
    command = _command()
    outcome = resolve_request(shipped_catalog(), command, at(60), state)
    first = output_events(_envelope(command), outcome)
    redelivered = _envelope(command).model_copy(update={"event_id": uuid_n(2)})
    assert output_events(redelivered, outcome) == first


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(batch_state(ESSAYS, {"spellcheck": ALL_OK, "nlp": ALL_OK}), id="resolved"),
        pytest.param(None, id="failed"),
    ],
)
def test_a_command_published_again_gets_the_stored_answer_byte_for_byte(state: BatchState | None) -> None:
    # A client retries a 503 with the same X-Correlation-ID after the first copy did reach the topic: the gateway
    # publishes a new envelope (new event id and timestamp); the worker answers it from the stored outcome.
    command = _command()
    outcome = resolve_request(shipped_catalog(), command, at(60), state)
    first = output_events(_envelope(command), outcome)
    again = _envelope(command).model_copy(update={"event_id": uuid_n(3), "event_timestamp": at(75)})
    assert output_events(again, outcome) == first


@pytest.mark.parametrize(
    ("envelope_correlation", "expected"), [(None, CCID), (ENVELOPE_CORRELATION, ENVELOPE_CORRELATION)]
)
def test_correlation_id_falls_back_to_client_correlation_id(
    envelope_correlation: uuid.UUID | None, expected: uuid.UUID
) -> None:
    for state in (batch_state(ESSAYS, {"spellcheck": ALL_OK}), None):
        for value in _values(_events(state, correlation_id=envelope_correlation)):
            assert value["correlation_id"] == str(expected)


def test_event_timestamp_is_the_command_timestamp_for_any_moment() -> None:
    moments = [datetime.fromisoformat("2020-01-01T00:00:00+00:00"), at(12345.678)]
    for moment in moments:
        envelope = _envelope(_command()).model_copy(update={"event_timestamp": moment})
        outcome = resolve_request(shipped_catalog(), envelope.data, moment, batch_state(ESSAYS, {"spellcheck": ALL_OK}))
        for value in _values(output_events(envelope, outcome)):
            assert datetime.fromisoformat(value["event_timestamp"]) == moment
