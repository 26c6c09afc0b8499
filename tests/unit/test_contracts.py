"""Wire models: both generations' samples parse, ids come out right, outputs round-trip, bad values are named."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import GATEWAY_SERVICE, WORKER_SERVICE, EventEnvelope, RawEnvelope, utc_iso
from contracts.events import (
    BatchEssaysRegistered,
    BatchPipelineResolvedV1,
    CJAssessmentCompletedV1,
    DLQRecord,
    ELSBatchPhaseOutcomeV1,
    PhaseSkippedV1,
    PipelineResolutionFailedV1,
    SpellcheckResultDataV1,
)
from contracts.pipelines import PipelineStep
from contracts.topics import (
    BATCH_STATE_UPDATES,
    COMPLETION_TOPICS,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    Topic,
    all_topics,
    dlq_topic,
)
from streams.decoding import decode_command, decode_completion
from tests.unit.factories import SAMPLES, envelope_doc, sample_bytes, sample_doc

B25 = "batch-2025-demo"
B26 = "batch-2026-demo"

# (generation, sample, topic, batch id, step, succeeded, failed); step None = a registration.
COMPLETION_SAMPLES = [
    ("2025", "registered", Topic.BATCH_REGISTERED, B25, None, (), ()),
    ("2025", "spellcheck_success_essay-a", Topic.SPELLCHECK_COMPLETED, B25, "spellcheck", ("essay-a",), ()),
    ("2025", "spellcheck_success_essay-b", Topic.SPELLCHECK_COMPLETED, B25, "spellcheck", ("essay-b",), ()),
    ("2025", "spellcheck_failed_essay-c", Topic.SPELLCHECK_COMPLETED, B25, "spellcheck", (), ("essay-c",)),
    (
        "2025",
        "cj_assessment_completed",
        Topic.CJ_ASSESSMENT_COMPLETED,
        B25,
        "cj_assessment",
        ("essay-a", "essay-b", "essay-c"),
        (),
    ),
    ("2026", "registered", Topic.BATCH_REGISTERED, B26, None, (), ()),
    ("2026", "spellcheck_success_essay-a", Topic.SPELLCHECK_COMPLETED, B26, "spellcheck", ("essay-a",), ()),
    ("2026", "spellcheck_success_essay-b", Topic.SPELLCHECK_COMPLETED, B26, "spellcheck", ("essay-b",), ()),
    ("2026", "spellcheck_failed_essay-c", Topic.SPELLCHECK_COMPLETED, B26, "spellcheck", (), ("essay-c",)),
    (
        "2026",
        "cj_assessment_completed",
        Topic.CJ_ASSESSMENT_COMPLETED,
        B26,
        "cj_assessment",
        ("essay-a", "essay-b"),
        ("essay-c",),
    ),
    ("2026", "els_phase_outcome_nlp", Topic.ELS_PHASE_OUTCOME, B26, "nlp", ("essay-a", "essay-b", "essay-c"), ()),
]
# (generation, batch id, user id, client correlation id)
COMMAND_SAMPLES = [
    ("2025", B25, None, "393e99ce-2add-4fb4-90b8-c9a05c2882e4"),
    ("2026", B26, "teacher-42", "1b8315aa-c3c0-48da-a286-5f5ec97b5cc5"),
]
SAMPLE_IDS = [f"{c[0]}/{c[1]}" for c in COMPLETION_SAMPLES]


def test_the_tables_cover_every_sample_file() -> None:
    on_disk = {f"{p.parent.name}/{p.stem}" for p in SAMPLES.glob("*/*.json")}
    tabled = set(SAMPLE_IDS) | {f"{gen}/client_pipeline_request" for gen, *_ in COMMAND_SAMPLES}
    assert on_disk == tabled


# ---- samples through the decoder ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gen", "name", "topic", "batch_id", "step", "ok", "failed"), COMPLETION_SAMPLES, ids=SAMPLE_IDS
)
def test_completion_sample_decodes_to_its_update(
    gen: str, name: str, topic: str, batch_id: str, step: str | None, ok: tuple[str, ...], failed: tuple[str, ...]
) -> None:
    doc = sample_doc(gen, name)
    update = decode_completion(topic, sample_bytes(gen, name))
    assert update.batch_id == batch_id
    assert update.step == step
    assert update.succeeded == ok
    assert update.failed == failed
    assert update.source_topic == topic
    assert update.source_event_id == doc["event_id"]
    assert (update.registration is not None) == (step is None)


@pytest.mark.parametrize(("gen", "owner", "course"), [("2025", None, None), ("2026", "teacher-42", "ENG5")])
def test_registered_sample_gives_the_registration(gen: str, owner: str | None, course: str | None) -> None:
    doc = sample_doc(gen, "registered")
    update = decode_completion(Topic.BATCH_REGISTERED, sample_bytes(gen, "registered"))
    reg = update.registration
    assert reg is not None
    assert reg.essay_ids == ("essay-a", "essay-b", "essay-c")
    assert reg.expected_essay_count == 3
    assert reg.user_id == owner
    assert reg.event_id == doc["event_id"]
    assert reg.at == update.at == datetime.fromisoformat(doc["event_timestamp"])
    assert BatchEssaysRegistered.model_validate(doc["data"]).course_code == course


@pytest.mark.parametrize(
    ("gen", "name"), [("2025", "spellcheck_success_essay-a"), ("2026", "spellcheck_failed_essay-c")]
)
def test_spellcheck_update_is_timed_by_the_payload_timestamp(gen: str, name: str) -> None:
    doc = sample_doc(gen, name)
    update = decode_completion(Topic.SPELLCHECK_COMPLETED, sample_bytes(gen, name))
    assert update.at == datetime.fromisoformat(doc["data"]["timestamp"])


@pytest.mark.parametrize(("gen", "batch_id", "user_id", "ccid"), COMMAND_SAMPLES)
def test_command_sample_decodes(gen: str, batch_id: str, user_id: str | None, ccid: str) -> None:
    doc = sample_doc(gen, "client_pipeline_request")
    command = decode_command(sample_bytes(gen, "client_pipeline_request"))
    assert isinstance(command.data, ClientBatchPipelineRequestV1)
    assert command.data.batch_id == batch_id
    assert command.data.requested_pipeline == "ai_feedback"
    assert command.data.user_id == user_id
    assert command.data.client_correlation_id == UUID(ccid)
    assert command.data.is_retry is False
    assert command.event_type == Topic.PIPELINE_COMMAND
    assert command.event_id == UUID(doc["event_id"])
    assert command.correlation_id == UUID(doc["correlation_id"])
    assert command.event_timestamp == datetime.fromisoformat(doc["event_timestamp"])


# ---- samples straight into the models -------------------------------------------------------------


@pytest.mark.parametrize(("gen", "name"), [(c[0], c[1]) for c in COMPLETION_SAMPLES], ids=SAMPLE_IDS)
def test_every_sample_envelope_parses(gen: str, name: str) -> None:
    doc = sample_doc(gen, name)
    envelope = RawEnvelope.model_validate(doc)
    assert envelope.event_type == doc["event_type"]
    assert envelope.schema_version == 1
    assert envelope.data == doc["data"]
    assert envelope.event_timestamp.utcoffset() == timedelta(0)
    if gen == "2025":
        assert envelope.correlation_id is None  # nullable in the older generation
    else:
        assert envelope.correlation_id == UUID(doc["correlation_id"])


@pytest.mark.parametrize(("gen", "batch_id", "user_id", "ccid"), COMMAND_SAMPLES)
def test_command_sample_parses_into_the_typed_envelope(gen: str, batch_id: str, user_id: str | None, ccid: str) -> None:
    doc = sample_doc(gen, "client_pipeline_request")
    envelope = EventEnvelope[ClientBatchPipelineRequestV1].model_validate(doc)
    assert envelope.data == ClientBatchPipelineRequestV1.model_validate(doc["data"])
    assert (envelope.data.batch_id, envelope.data.user_id) == (batch_id, user_id)
    assert envelope.data.client_correlation_id == UUID(ccid)
    assert envelope == decode_command(sample_bytes(gen, "client_pipeline_request"))


@pytest.mark.parametrize(
    ("gen", "name", "essay_id", "batch_id", "ok"),
    [
        ("2025", "spellcheck_success_essay-a", "essay-a", B25, True),
        ("2025", "spellcheck_failed_essay-c", "essay-c", B25, False),
        ("2026", "spellcheck_success_essay-b", "essay-b", B26, True),
        ("2026", "spellcheck_failed_essay-c", "essay-c", B26, False),
    ],
)
def test_spellcheck_model_ids_both_generations(gen: str, name: str, essay_id: str, batch_id: str, ok: bool) -> None:
    payload = SpellcheckResultDataV1.model_validate(sample_doc(gen, name)["data"])
    assert payload.essay_id == essay_id
    assert payload.batch_id == batch_id
    assert (payload.status == "spellchecked_success") is ok
    assert payload.original_text_storage_id == f"text-{essay_id}"
    assert payload.corrections_made == 3


@pytest.mark.parametrize(
    ("gen", "batch_id", "succeeded", "failed"),
    [
        ("2025", B25, ["essay-a", "essay-b", "essay-c"], []),  # rankings: every ranked essay succeeded
        ("2026", B26, ["essay-a", "essay-b"], ["essay-c"]),  # processing_summary
    ],
)
def test_cj_model_outcomes_both_generations(gen: str, batch_id: str, succeeded: list[str], failed: list[str]) -> None:
    payload = CJAssessmentCompletedV1.model_validate(sample_doc(gen, "cj_assessment_completed")["data"])
    assert payload.batch_id == batch_id
    assert payload.cj_assessment_job_id == "cj-job-1"
    assert payload.essay_outcomes() == (succeeded, failed)


@pytest.mark.parametrize(("gen", "batch_id"), [("2025", B25), ("2026", B26)])
def test_registered_model_batch_id_both_generations(gen: str, batch_id: str) -> None:
    payload = BatchEssaysRegistered.model_validate(sample_doc(gen, "registered")["data"])
    assert payload.registered_batch_id == batch_id
    assert payload.expected_essay_count == 3


def test_els_outcome_model() -> None:
    payload = ELSBatchPhaseOutcomeV1.model_validate(sample_doc("2026", "els_phase_outcome_nlp")["data"])
    assert payload.batch_id == B26
    assert payload.phase_name == "nlp"
    assert [e.essay_id for e in payload.processed_essays] == ["essay-a", "essay-b", "essay-c"]
    assert payload.processed_essays[0].text_storage_id == "text-essay-a"
    assert payload.failed_essay_ids == []
    assert payload.correlation_id == UUID("5dc35f16-e44c-4287-b38f-80af3f46c04c")


# ---- id extraction fallbacks ----------------------------------------------------------------------


def _spell(**fields: Any) -> dict[str, Any]:
    return {"timestamp": "2026-03-01T12:00:00Z", "status": "spellchecked_success", **fields}


@pytest.mark.parametrize(
    ("payload", "essay_id", "batch_id"),
    [
        pytest.param(_spell(entity_ref={"entity_id": "e", "parent_id": "b"}), "e", "b", id="2025-nested"),
        pytest.param(_spell(entity_id="e", parent_id="b"), "e", "b", id="2026-flat"),
        pytest.param(
            _spell(entity_ref={"entity_id": "e"}, system_metadata={"entity": {"entity_id": "e", "parent_id": "b"}}),
            "e",
            "b",
            id="2025-parent-from-system-metadata",
        ),
        pytest.param(
            _spell(entity_id="e", parent_id=None, system_metadata={"entity_id": "e", "parent_id": "b"}),
            "e",
            "b",
            id="2026-parent-from-system-metadata",
        ),
        pytest.param(
            _spell(system_metadata={"entity_id": "e", "parent_id": "b"}), "e", "b", id="everything-from-metadata"
        ),
        pytest.param(
            _spell(entity_ref={"entity_id": "e", "parent_id": "b"}, system_metadata={"parent_id": "other"}),
            "e",
            "b",
            id="payload-wins-over-metadata",
        ),
    ],
)
def test_spellcheck_id_fallbacks(payload: dict[str, Any], essay_id: str, batch_id: str) -> None:
    model = SpellcheckResultDataV1.model_validate(payload)
    assert (model.essay_id, model.batch_id) == (essay_id, batch_id)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_spell(entity_ref={"entity_id": "e"}), "batch id missing"),
        (_spell(entity_id="e", system_metadata={"entity_id": "e"}), "batch id missing"),
        (_spell(parent_id="b"), "essay id missing"),
    ],
)
def test_spellcheck_without_ids_is_refused(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SpellcheckResultDataV1.model_validate(payload)


def _cj(**fields: Any) -> dict[str, Any]:
    return {"timestamp": "2026-03-01T12:00:00Z", "status": "completed", "cj_assessment_job_id": "j", **fields}


@pytest.mark.parametrize(
    ("payload", "batch_id", "outcomes"),
    [
        pytest.param(_cj(entity_ref={"entity_id": "b"}, rankings=[{"els_essay_id": "x"}]), "b", (["x"], []), id="2025"),
        pytest.param(
            _cj(entity_id="b", processing_summary={"successful_essay_ids": ["x"], "failed_essay_ids": ["y"]}),
            "b",
            (["x"], ["y"]),
            id="2026",
        ),
        pytest.param(
            _cj(system_metadata={"entity": {"entity_id": "b"}}, rankings=[]), "b", ([], []), id="batch-from-metadata"
        ),
        pytest.param(
            _cj(entity_id="b", rankings=[{"els_essay_id": "x"}], processing_summary={"failed_essay_ids": ["x"]}),
            "b",
            ([], ["x"]),
            id="summary-wins-over-rankings",
        ),
    ],
)
def test_cj_id_and_outcome_extraction(
    payload: dict[str, Any], batch_id: str, outcomes: tuple[list[str], list[str]]
) -> None:
    model = CJAssessmentCompletedV1.model_validate(payload)
    assert model.batch_id == batch_id
    assert model.essay_outcomes() == outcomes


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_cj(rankings=[]), "batch id missing"),
        (_cj(entity_id="b"), "need either rankings"),
    ],
)
def test_cj_without_batch_or_outcomes_is_refused(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CJAssessmentCompletedV1.model_validate(payload)


@pytest.mark.parametrize(
    ("payload", "batch_id"),
    [
        ({"batch_id": "b25", "expected_essay_count": 1, "essay_ids": ["e"]}, "b25"),
        ({"entity_id": "b26", "expected_essay_count": 1, "essay_ids": ["e"], "user_id": "u"}, "b26"),
        ({"batch_id": "b", "entity_id": "other", "expected_essay_count": 1, "essay_ids": []}, "b"),
    ],
)
def test_registered_batch_id_from_either_field(payload: dict[str, Any], batch_id: str) -> None:
    assert BatchEssaysRegistered.model_validate(payload).registered_batch_id == batch_id


def test_registered_without_batch_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="batch id missing"):
        BatchEssaysRegistered.model_validate({"expected_essay_count": 1, "essay_ids": ["e"]})


# ---- validation errors name the field -------------------------------------------------------------

COMMAND = {
    "batch_id": "b",
    "requested_pipeline": "nlp",
    "client_correlation_id": "00000000-0000-4000-8000-000000000001",
}
REGISTERED = {"batch_id": "b", "expected_essay_count": 1, "essay_ids": ["e"]}


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (ClientBatchPipelineRequestV1, {**COMMAND, "batch_id": "x" * 256}, "batch_id"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "batch_id": ""}, "batch_id"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "requested_pipeline": "p" * 101}, "requested_pipeline"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "requested_pipeline": ""}, "requested_pipeline"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "client_correlation_id": "not-a-uuid"}, "client_correlation_id"),
        (
            ClientBatchPipelineRequestV1,
            {k: v for k, v in COMMAND.items() if k != "client_correlation_id"},
            "client_correlation_id",
        ),
        (ClientBatchPipelineRequestV1, {**COMMAND, "user_id": ""}, "user_id"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "user_id": "u" * 256}, "user_id"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "retry_reason": "r" * 501}, "retry_reason"),
        (ClientBatchPipelineRequestV1, {**COMMAND, "is_retry": "perhaps"}, "is_retry"),
        (BatchEssaysRegistered, {**REGISTERED, "expected_essay_count": 0}, "expected_essay_count"),
        (BatchEssaysRegistered, {**REGISTERED, "batch_id": "x" * 256}, "batch_id"),
        (BatchEssaysRegistered, {k: v for k, v in REGISTERED.items() if k != "essay_ids"}, "essay_ids"),
        (
            ELSBatchPhaseOutcomeV1,
            {"batch_id": "b", "phase_name": "nlp", "phase_status": "ok", "correlation_id": "x"},
            "correlation_id",
        ),
        (SpellcheckResultDataV1, _spell(entity_id="e", parent_id="b", status="done"), "status"),
        (SpellcheckResultDataV1, _spell(entity_id="e", parent_id="b", timestamp="2026-03-01T12:00:00"), "timestamp"),
    ],
)
def test_invalid_value_names_the_field(model: type[BaseModel], payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(payload)
    assert field in {err["loc"][0] for err in info.value.errors()}


@pytest.mark.parametrize(
    "payload",
    [
        {**COMMAND, "batch_id": "x" * 255},
        {**COMMAND, "requested_pipeline": "p" * 100},
        {**COMMAND, "retry_reason": "r" * 500, "is_retry": True},
        {**COMMAND, "user_id": "u" * 255},
    ],
)
def test_command_limits_are_inclusive(payload: dict[str, Any]) -> None:
    assert ClientBatchPipelineRequestV1.model_validate(payload).batch_id == payload["batch_id"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_id": "nope"}, "event_id"),
        ({"event_timestamp": "2026-03-01T12:00:00"}, "event_timestamp"),  # naive: refused
        ({"event_type": ""}, "event_type"),
        ({"correlation_id": "nope"}, "correlation_id"),
        ({"data": "not an object"}, "data"),
    ],
)
def test_invalid_envelope_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RawEnvelope.model_validate({**envelope_doc(Topic.PIPELINE_COMMAND, {}), **overrides})
    assert field in {err["loc"][0] for err in info.value.errors()}


def test_envelope_requires_its_fields() -> None:
    with pytest.raises(ValidationError) as info:
        RawEnvelope.model_validate({"data": {}})
    missing = {err["loc"][0] for err in info.value.errors() if err["type"] == "missing"}
    assert missing == {"event_id", "event_type", "event_timestamp", "source_service"}


# ---- unknown extra input fields are ignored -------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (ClientBatchPipelineRequestV1, COMMAND),
        (BatchEssaysRegistered, REGISTERED),
        (SpellcheckResultDataV1, _spell(entity_ref={"entity_id": "e", "parent_id": "b", "extra": 1})),
        (CJAssessmentCompletedV1, _cj(entity_id="b", rankings=[{"els_essay_id": "x", "extra": 1}])),
        (ELSBatchPhaseOutcomeV1, {"batch_id": "b", "phase_name": "nlp", "phase_status": "ok"}),
        (RawEnvelope, envelope_doc(Topic.PIPELINE_COMMAND, {})),
    ],
)
def test_unknown_input_fields_are_ignored(model: type[BaseModel], payload: dict[str, Any]) -> None:
    parsed = model.model_validate({**payload, "field_from_the_future": {"x": 1}})
    assert parsed == model.model_validate(payload)
    assert "field_from_the_future" not in parsed.model_dump()


# ---- outputs: spec-shaped, round-trip ------------------------------------------------------------

STEP = {
    "name": "nlp",
    "service_name": "nlp_service",
    "event_type": "huleedu.batch.nlp.initiate.command.v1",
    "event_data_model": "BatchServiceNLPInitiateCommandDataV1",
    "depends_on": ["spellcheck"],
}
RESOLVED = {
    "batch_id": "batch-1",
    "requested_pipeline": "nlp",
    "client_correlation_id": "11111111-1111-4111-8111-111111111111",
    "user_id": "teacher-42",
    "final_pipeline": ["nlp"],
    "steps": [STEP],
    "pruned_steps": ["spellcheck"],
    "analysis_summary": "1 step to run",
}
FAILED = {
    "batch_id": "batch-1",
    "requested_pipeline": "ghost",
    "client_correlation_id": "11111111-1111-4111-8111-111111111111",
    "user_id": None,
    "reason_code": "UNKNOWN_PIPELINE",
    "message": "Unknown pipeline 'ghost'",
}
SKIPPED = {
    "event": "batch.phase.skipped",
    "batch_id": "batch-1",
    "phase_name": "spellcheck",
    "skip_reason": "already_completed",
    "storage_id": None,
    "correlation_id": "11111111-1111-4111-8111-111111111111",
    "metadata": {
        "entity_id": "batch-1",
        "entity_type": "batch",
        "parent_id": None,
        "timestamp": "2026-03-01T12:00:00Z",
    },
}
DLQ = {
    "schema_version": 1,
    "failed_event_envelope": {"raw": "not json"},
    "dlq_reason": "invalid JSON",
    "timestamp": "2026-03-01T12:00:00Z",
    "service": "batch_conductor_service",
    "additional_metadata": {"source_topic": Topic.SPELLCHECK_COMPLETED.value, "partition": 0, "offset": 7},
}

OUTPUT_CASES = [
    pytest.param(BatchPipelineResolvedV1, RESOLVED, id="resolved"),
    pytest.param(PipelineResolutionFailedV1, FAILED, id="failed"),
    pytest.param(PhaseSkippedV1, SKIPPED, id="skipped"),
    pytest.param(DLQRecord, DLQ, id="dlq"),
    pytest.param(
        EventEnvelope[BatchPipelineResolvedV1],
        envelope_doc(Topic.PIPELINE_RESOLVED, RESOLVED, source_service=WORKER_SERVICE),
        id="envelope-resolved",
    ),
    pytest.param(
        EventEnvelope[PipelineResolutionFailedV1],
        envelope_doc(Topic.PIPELINE_RESOLUTION_FAILED, FAILED, source_service=WORKER_SERVICE),
        id="envelope-failed",
    ),
    pytest.param(
        EventEnvelope[PhaseSkippedV1],
        envelope_doc(Topic.PHASE_SKIPPED, SKIPPED, source_service=WORKER_SERVICE, metadata={"org_id": "o"}),
        id="envelope-skipped",
    ),
    pytest.param(
        EventEnvelope[ClientBatchPipelineRequestV1],
        envelope_doc(
            Topic.PIPELINE_COMMAND,
            {**COMMAND, "user_id": "u", "is_retry": True, "retry_reason": "again", "prompt_payload": {"k": "v"}},
            source_service=GATEWAY_SERVICE,
        ),
        id="envelope-command",
    ),
]


@pytest.mark.parametrize(("model", "doc"), OUTPUT_CASES)
def test_output_round_trips_through_json(model: type[BaseModel], doc: dict[str, Any]) -> None:
    built = model.model_validate(doc)
    text = built.model_dump_json()
    assert model.model_validate_json(text) == built
    assert model.model_validate(json.loads(text)) == built


@pytest.mark.parametrize(("model", "doc"), OUTPUT_CASES)
def test_output_serializes_to_exactly_the_spec_shape(model: type[BaseModel], doc: dict[str, Any]) -> None:
    assert json.loads(model.model_validate(doc).model_dump_json()) == json.loads(json.dumps(doc))


@pytest.mark.parametrize(
    ("model", "doc"),
    [
        (BatchPipelineResolvedV1, RESOLVED),
        (PipelineResolutionFailedV1, FAILED),
        (PhaseSkippedV1, SKIPPED),
        (DLQRecord, DLQ),
    ],
)
def test_output_models_refuse_unknown_fields(model: type[BaseModel], doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate({**doc, "typo_field": 1})
    assert info.value.errors()[0]["loc"] == ("typo_field",)


def test_phase_skipped_defaults_are_the_platform_constants() -> None:
    skipped = PhaseSkippedV1.model_validate(
        {k: v for k, v in SKIPPED.items() if k not in {"event", "skip_reason", "storage_id"}}
    )
    assert skipped.event == "batch.phase.skipped"
    assert skipped.skip_reason == "already_completed"
    assert skipped.metadata.entity_type == "batch"
    assert skipped.metadata.parent_id is None


def test_step_in_resolved_event_is_the_pipeline_step() -> None:
    resolved = BatchPipelineResolvedV1.model_validate(RESOLVED)
    assert resolved.steps == [PipelineStep(**{**STEP, "depends_on": ("spellcheck",)})]


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(
    batch_id=_TEXT,
    pipeline=_TEXT,
    ccid=st.uuids(),
    user=st.none() | _TEXT,
    final=st.lists(_TEXT, max_size=5),
    pruned=st.lists(_TEXT, max_size=5),
    summary=st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    moment=st.datetimes(timezones=st.just(UTC)),
)
def test_resolved_envelope_round_trips_for_any_values(
    batch_id: str,
    pipeline: str,
    ccid: UUID,
    user: str | None,
    final: list[str],
    pruned: list[str],
    summary: str,
    moment: datetime,
) -> None:
    payload = BatchPipelineResolvedV1(
        batch_id=batch_id,
        requested_pipeline=pipeline,
        client_correlation_id=ccid,
        user_id=user,
        final_pipeline=final,
        steps=[],
        pruned_steps=pruned,
        analysis_summary=summary,
    )
    envelope = EventEnvelope[BatchPipelineResolvedV1](
        event_id=ccid,
        event_type=Topic.PIPELINE_RESOLVED,
        event_timestamp=moment,
        source_service=WORKER_SERVICE,
        correlation_id=ccid,
        data=payload,
    )
    assert EventEnvelope[BatchPipelineResolvedV1].model_validate_json(envelope.model_dump_json()) == envelope


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "2026-03-01T12:00:00Z"),
        (datetime(2026, 3, 1, 12, 0, 0, 5000, tzinfo=UTC), "2026-03-01T12:00:00.005000Z"),
        (datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2026-03-01T14:00:00+02:00"),
    ],
)
def test_utc_iso(moment: datetime, text: str) -> None:
    assert utc_iso(moment) == text


# ---- topics ---------------------------------------------------------------------------------------

SPEC_INPUT_TOPICS = {
    "huleedu.commands.batch.pipeline.v1",
    "huleedu.batch.essays.registered.v1",
    "huleedu.essay.spellcheck.completed.v1",
    "huleedu.cj_assessment.completed.v1",
    "huleedu.els.batch.phase.outcome.v1",
}
SPEC_OUTPUT_TOPICS = {
    "huleedu.batch.pipeline.resolved.v1",
    "huleedu.batch.pipeline.resolution.failed.v1",
    "huleedu.batch.phase.skipped.v1",
}


def test_every_spec_topic_is_defined_byte_for_byte() -> None:
    assert {t.value for t in Topic} == SPEC_INPUT_TOPICS | SPEC_OUTPUT_TOPICS
    assert set(INPUT_TOPICS) == SPEC_INPUT_TOPICS
    assert set(OUTPUT_TOPICS) == SPEC_OUTPUT_TOPICS
    assert set(COMPLETION_TOPICS) == SPEC_INPUT_TOPICS - {"huleedu.commands.batch.pipeline.v1"}


@pytest.mark.parametrize("topic", sorted(SPEC_INPUT_TOPICS))
def test_dlq_topic_is_the_input_topic_with_suffix(topic: str) -> None:
    assert dlq_topic(topic) == f"{topic}.DLQ"
    assert dlq_topic(topic) in all_topics()


def test_all_topics_lists_each_topic_once() -> None:
    names = all_topics()
    assert len(names) == len(set(names))
    assert set(names) == SPEC_INPUT_TOPICS | SPEC_OUTPUT_TOPICS | {BATCH_STATE_UPDATES} | {
        f"{t}.DLQ" for t in (*SPEC_INPUT_TOPICS, BATCH_STATE_UPDATES)  # an unreadable update is dead-lettered too
    }
