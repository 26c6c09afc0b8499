"""streams.decoding: Kafka bytes to envelopes and state updates; everything unusable is a PoisonMessage."""

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.topics import Topic
from streams.decoding import PoisonMessage, decode_command, decode_completion, parse_envelope, parse_json
from tests.unit.factories import envelope_doc, sample_doc, to_bytes

SPELL = Topic.SPELLCHECK_COMPLETED
SPELL_DATA = {
    "entity_id": "essay-a",
    "parent_id": "batch-1",
    "timestamp": "2026-03-01T12:00:00Z",
    "status": "spellchecked_success",
}
COMMAND_DATA = {
    "batch_id": "batch-1",
    "requested_pipeline": "nlp",
    "client_correlation_id": "00000000-0000-4000-8000-000000000007",
    "user_id": "teacher-42",
}


def _spell(**data: Any) -> bytes:
    return to_bytes(envelope_doc(SPELL, {**SPELL_DATA, **data}))


def _without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


# (topic, message value, exact reason)
POISON = [
    pytest.param(SPELL, None, "empty message (no value)", id="no-value"),
    pytest.param(SPELL, b"\xff\xfe{}", "invalid UTF-8", id="invalid-utf8"),
    pytest.param(
        SPELL,
        b"{not json",
        "invalid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        id="invalid-json",
    ),
    pytest.param(SPELL, b"", "invalid JSON: Expecting value at line 1 column 1", id="empty-bytes"),
    pytest.param(SPELL, b'{"a": 1}\n{"b": 2}', "invalid JSON: Extra data at line 2 column 1", id="two-documents"),
    pytest.param(SPELL, b'"\\ud800"', "invalid JSON: lone surrogate escape (not valid Unicode)", id="lone-surrogate"),
    pytest.param(SPELL, b"[1, 2]", "envelope must be a JSON object, got list", id="json-array"),
    pytest.param(SPELL, b"42", "envelope must be a JSON object, got int", id="json-number"),
    pytest.param(SPELL, b'"text"', "envelope must be a JSON object, got str", id="json-string"),
    pytest.param(SPELL, b"null", "envelope must be a JSON object, got NoneType", id="json-null"),
    pytest.param(
        SPELL,
        to_bytes(_without(envelope_doc(SPELL, SPELL_DATA), "event_id")),
        "invalid envelope: event_id: Field required",
        id="missing-event-id",
    ),
    pytest.param(
        SPELL,
        to_bytes(_without(envelope_doc(SPELL, SPELL_DATA), "event_type", "data")),
        "invalid envelope: event_type: Field required; data: Field required",
        id="missing-two-fields",
    ),
    pytest.param(
        SPELL,
        to_bytes(envelope_doc(SPELL, SPELL_DATA, event_timestamp="2026-03-01T12:00:00")),
        "invalid envelope: event_timestamp: Input should have timezone info",
        id="naive-timestamp",
    ),
    pytest.param(
        SPELL,
        to_bytes(envelope_doc(SPELL, ["not", "an", "object"])),
        "invalid envelope: data: Input should be a valid dictionary",
        id="data-not-an-object",
    ),
    pytest.param(
        SPELL,
        to_bytes(envelope_doc("huleedu.something.else.v1", SPELL_DATA)),
        "unknown event type 'huleedu.something.else.v1' on topic 'huleedu.essay.spellcheck.completed.v1'",
        id="unknown-event-type",
    ),
    pytest.param(
        SPELL,
        _spell(status="maybe"),
        "invalid SpellcheckResultDataV1 payload: data.status: "
        "Input should be 'spellchecked_success' or 'spellcheck_failed'",
        id="wrong-status",
    ),
    pytest.param(
        SPELL,
        _spell(timestamp=["2026"]),
        "invalid SpellcheckResultDataV1 payload: data.timestamp: Input should be a valid datetime",
        id="wrong-timestamp-type",
    ),
    pytest.param(
        SPELL,
        _spell(parent_id=None),
        "invalid SpellcheckResultDataV1 payload: data: Value error, batch id missing: "
        "need entity_ref.parent_id, parent_id or system_metadata parent",
        id="missing-batch-id",
    ),
    pytest.param(
        Topic.BATCH_REGISTERED,
        to_bytes(envelope_doc(Topic.BATCH_REGISTERED, {"expected_essay_count": 1, "essay_ids": []})),
        "invalid BatchEssaysRegistered payload: data: Value error, batch id missing: "
        "need batch_id (2025) or entity_id (2026)",
        id="registered-without-batch-id",
    ),
    pytest.param(
        Topic.BATCH_REGISTERED,
        to_bytes(envelope_doc(Topic.BATCH_REGISTERED, {"batch_id": "b", "expected_essay_count": "three"})),
        "invalid BatchEssaysRegistered payload: data.expected_essay_count: "
        "Input should be a valid integer, unable to parse string as an integer; data.essay_ids: Field required",
        id="registered-wrong-types",
    ),
    pytest.param(
        Topic.ELS_PHASE_OUTCOME,
        to_bytes(
            envelope_doc(
                Topic.ELS_PHASE_OUTCOME,
                {"batch_id": "b", "phase_name": "nlp", "phase_status": "ok", "processed_essays": "all"},
            )
        ),
        "invalid ELSBatchPhaseOutcomeV1 payload: data.processed_essays: Input should be a valid list",
        id="els-wrong-type",
    ),
    pytest.param(
        Topic.CJ_ASSESSMENT_COMPLETED,
        to_bytes(
            envelope_doc(
                Topic.CJ_ASSESSMENT_COMPLETED,
                {"entity_id": "b", "timestamp": "2026-03-01T12:00:00Z", "status": "x", "cj_assessment_job_id": "j"},
            )
        ),
        "invalid CJAssessmentCompletedV1 payload: data: Value error, "
        "need either rankings (2025) or processing_summary (2026)",
        id="cj-without-outcomes",
    ),
    pytest.param(
        Topic.PIPELINE_COMMAND,
        to_bytes(envelope_doc(Topic.PIPELINE_COMMAND, {"batch_id": "b"})),
        "topic 'huleedu.commands.batch.pipeline.v1' carries no completion events",
        id="command-topic-is-not-a-completion-topic",
    ),
]


@pytest.mark.parametrize(("topic", "value", "reason"), POISON)
def test_completion_poison_reason(topic: str, value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode_completion(topic, value)
    assert info.value.reason == reason
    assert str(info.value) == reason


def test_invalid_utf8_carries_the_decoder_detail() -> None:
    with pytest.raises(PoisonMessage) as info:
        parse_json(b"\xff\xfe{}")
    assert info.value.detail is not None
    assert "can't decode byte 0xff in position 0" in info.value.detail


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (b"[1, 2]", [1, 2]),
        (b"42", 42),
        (to_bytes(envelope_doc("other.topic", {"x": 1})), envelope_doc("other.topic", {"x": 1})),
    ],
)
def test_poison_keeps_what_parsed(value: bytes, parsed: Any) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode_completion(SPELL, value)
    assert info.value.parsed == parsed


@pytest.mark.parametrize("value", [None, b"\xff", b"{", b'"\\udc00"'])
def test_poison_without_parsed_json_keeps_nothing(value: bytes | None) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode_completion(SPELL, value)
    assert info.value.parsed is None


def test_payload_poison_keeps_the_original_message_not_a_reserialized_one() -> None:
    doc = envelope_doc(SPELL, {**SPELL_DATA, "status": "maybe"}, event_timestamp="2026-03-01T12:00:00+00:00")
    doc["x_vendor_field"] = {"kept": True}
    with pytest.raises(PoisonMessage) as info:
        decode_completion(SPELL, to_bytes(doc))
    assert info.value.parsed == doc


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            {**COMMAND_DATA, "client_correlation_id": "nope"},
            "invalid ClientBatchPipelineRequestV1 payload: data.client_correlation_id: Input should be a valid UUID",
        ),
        (
            {**COMMAND_DATA, "batch_id": "b" * 256},
            "invalid ClientBatchPipelineRequestV1 payload: data.batch_id: String should have at most 255 characters",
        ),
        (
            {**COMMAND_DATA, "retry_reason": "r" * 501},
            "invalid ClientBatchPipelineRequestV1 payload: data.retry_reason: "
            "String should have at most 500 characters",
        ),
        (
            _without(COMMAND_DATA, "requested_pipeline"),
            "invalid ClientBatchPipelineRequestV1 payload: data.requested_pipeline: Field required",
        ),
    ],
)
def test_command_poison_reason(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode_command(to_bytes(envelope_doc(Topic.PIPELINE_COMMAND, data)))
    assert info.value.reason.startswith(reason)  # the field and pydantic's message, whose details may grow
    assert info.value.parsed == envelope_doc(Topic.PIPELINE_COMMAND, data)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            to_bytes(envelope_doc(SPELL, SPELL_DATA)),
            f"unknown event type '{SPELL}' on topic '{Topic.PIPELINE_COMMAND}'",
        ),
        (b"[]", "envelope must be a JSON object, got list"),
        (None, "empty message (no value)"),
    ],
)
def test_command_topic_refuses_other_messages(value: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode_command(value)
    assert info.value.reason == reason


def test_reason_lists_at_most_five_problems() -> None:
    doc = envelope_doc(Topic.BATCH_REGISTERED, {f"x{i}": i for i in range(10)})
    doc.update(event_id="bad", source_service="", correlation_id="bad", event_timestamp="bad", schema_version="x")
    with pytest.raises(PoisonMessage) as info:
        decode_completion(Topic.BATCH_REGISTERED, to_bytes(doc))
    assert info.value.reason.startswith("invalid envelope: ")
    problems = info.value.reason.removeprefix("invalid envelope: ").split("; ")
    assert [p.split(":")[0] for p in problems] == [
        "event_id",
        "event_timestamp",
        "source_service",
        "schema_version",
        "correlation_id",
    ]


# ---- what decodes -----------------------------------------------------------------------------------


def test_parse_envelope_returns_the_raw_payload() -> None:
    doc = envelope_doc(SPELL, SPELL_DATA)
    envelope = parse_envelope(SPELL, to_bytes(doc))
    assert envelope.data == SPELL_DATA
    assert str(envelope.event_id) == doc["event_id"]


@pytest.mark.parametrize(
    ("status", "succeeded", "failed"),
    [("spellchecked_success", ("essay-a",), ()), ("spellcheck_failed", (), ("essay-a",))],
)
def test_spellcheck_status_maps_to_outcome(status: str, succeeded: tuple[str, ...], failed: tuple[str, ...]) -> None:
    update = decode_completion(SPELL, _spell(status=status))
    assert (update.step, update.succeeded, update.failed) == ("spellcheck", succeeded, failed)


def test_registration_dedupes_essay_ids_keeping_order() -> None:
    data = {"entity_id": "b", "expected_essay_count": 3, "essay_ids": ["e2", "e1", "e2", "e3", "e1"], "user_id": "u"}
    update = decode_completion(Topic.BATCH_REGISTERED, to_bytes(envelope_doc(Topic.BATCH_REGISTERED, data)))
    assert update.registration is not None
    assert update.registration.essay_ids == ("e2", "e1", "e3")
    assert update.registration.user_id == "u"


def test_els_outcome_any_phase_with_failures() -> None:
    data = {
        "batch_id": "b",
        "phase_name": "ai_feedback",
        "phase_status": "completed_with_failures",
        "processed_essays": [{"essay_id": "e1"}],
        "failed_essay_ids": ["e2"],
    }
    update = decode_completion(Topic.ELS_PHASE_OUTCOME, to_bytes(envelope_doc(Topic.ELS_PHASE_OUTCOME, data)))
    assert (update.batch_id, update.step, update.succeeded, update.failed) == ("b", "ai_feedback", ("e1",), ("e2",))


def test_command_with_null_correlation_and_defaults() -> None:
    doc = envelope_doc(Topic.PIPELINE_COMMAND, _without(COMMAND_DATA, "user_id"), correlation_id=None)
    command = decode_command(to_bytes(doc))
    assert command.correlation_id is None
    assert command.data.user_id is None
    assert command.data.is_retry is False
    assert command.data.retry_reason is None


def test_valid_surrogate_pair_escape_is_accepted() -> None:
    update = decode_completion(SPELL, _spell(entity_id="essay-\U0001f600"))
    assert update.succeeded == ("essay-\U0001f600",)
    assert b"\\ud83d\\ude00" in _spell(entity_id="essay-\U0001f600")  # json.dumps escapes it as a pair


def test_sample_with_unknown_fields_decodes() -> None:
    doc = sample_doc("2026", "spellcheck_success_essay-a")
    doc["brand_new_envelope_field"] = 1
    doc["data"]["brand_new_payload_field"] = {"nested": [1]}
    assert decode_completion(SPELL, json.dumps(doc).encode()).succeeded == ("essay-a",)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_poison(value: bytes) -> None:
    for topic in Topic:
        try:
            decode_completion(topic, value)
        except PoisonMessage as exc:
            assert exc.reason
    try:
        decode_command(value)
    except PoisonMessage as exc:
        assert exc.reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["event_id", "event_type", "data", "x"]), _json) | _json)
def test_arbitrary_json_decodes_or_raises_poison(doc: Any) -> None:
    try:
        decode_completion(SPELL, json.dumps(doc).encode())
    except PoisonMessage as exc:
        assert exc.reason
