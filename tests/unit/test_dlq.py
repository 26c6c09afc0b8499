"""streams.dlq: the dead-letter record keeps the original message and says where it came from."""

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import DLQRecord
from contracts.topics import Topic
from streams.decoding import PoisonMessage, decode_command, decode_completion
from streams.dlq import build_dlq_record, original_message
from tests.unit.factories import at, envelope_doc, to_bytes

TOPIC = Topic.SPELLCHECK_COMPLETED
NOW = at(0)
RECORD_KEYS = {"schema_version", "failed_event_envelope", "dlq_reason", "timestamp", "service", "additional_metadata"}


def _record(value: bytes | None, parsed: Any = None, detail: str | None = None, **kw: Any) -> dict[str, Any]:
    raw = build_dlq_record(
        topic=kw.get("topic", TOPIC),
        partition=kw.get("partition", 3),
        offset=kw.get("offset", 42),
        value=value,
        reason=kw.get("reason", "something is wrong"),
        parsed=parsed,
        detail=detail,
        now=NOW,
    )
    assert isinstance(raw, bytes)
    DLQRecord.model_validate_json(raw)
    return json.loads(raw)


@pytest.mark.parametrize(
    ("value", "parsed", "kept"),
    [
        pytest.param(b'{"a": 1}', {"a": 1}, {"a": 1}, id="parsed-object"),
        pytest.param(b"[1, 2]", [1, 2], [1, 2], id="parsed-array"),
        pytest.param(b'{"a": 1}', None, {"a": 1}, id="json-value-reparsed"),
        pytest.param(b"42", None, 42, id="json-scalar"),
        pytest.param(b"{not json", None, {"raw": "{not json"}, id="non-json-text"),
        pytest.param(b"", None, {"raw": ""}, id="empty-bytes"),
        pytest.param(b"caf\xc3\xa9 {", None, {"raw": "caf\u00e9 {"}, id="utf8-text"),
        pytest.param(
            b"\xff\xfe\x00bin",
            None,
            {"raw": base64.b64encode(b"\xff\xfe\x00bin").decode(), "encoding": "base64"},
            id="invalid-utf8",
        ),
        pytest.param(None, None, {"raw": None}, id="no-value"),
        pytest.param(b'"\\ud800"', None, {"raw": '"\\ud800"'}, id="lone-surrogate-kept-as-text"),
        pytest.param(b'{"k": "\\udfff"}', {"k": "\udfff"}, {"raw": '{"k": "\\udfff"}'}, id="unwritable-parsed"),
    ],
)
def test_failed_message_is_kept(value: bytes | None, parsed: Any, kept: Any) -> None:
    assert original_message(value, parsed) == kept
    assert _record(value, parsed)["failed_event_envelope"] == kept


def test_invalid_utf8_round_trips_through_base64() -> None:
    value = bytes(range(256))
    kept = _record(value)["failed_event_envelope"]
    assert kept["encoding"] == "base64"
    assert base64.b64decode(kept["raw"]) == value


def test_record_fields() -> None:
    record = _record(b"{", reason="invalid JSON: boom", topic=Topic.BATCH_REGISTERED, partition=0, offset=0)
    assert set(record) == RECORD_KEYS
    assert record["schema_version"] == 1
    assert record["dlq_reason"] == "invalid JSON: boom"
    assert record["timestamp"] == "2026-03-01T12:00:00Z"
    assert record["service"] == "batch_conductor_service"
    assert record["additional_metadata"] == {"source_topic": Topic.BATCH_REGISTERED, "partition": 0, "offset": 0}


def test_record_carries_error_detail_when_given() -> None:
    record = _record(b"\xff", detail="'utf-8' codec can't decode byte 0xff")
    assert record["additional_metadata"] == {
        "source_topic": TOPIC,
        "partition": 3,
        "offset": 42,
        "error_detail": "'utf-8' codec can't decode byte 0xff",
    }


def test_unknown_position_is_recorded_as_null() -> None:
    record = _record(b"{}", partition=None, offset=None)
    assert record["additional_metadata"]["partition"] is None
    assert record["additional_metadata"]["offset"] is None


def test_record_is_not_enveloped() -> None:
    record = _record(to_bytes(envelope_doc(TOPIC, {})))
    assert "event_id" not in record and "data" not in record
    assert record["failed_event_envelope"]["event_type"] == TOPIC


POISON_VALUES = [
    None,
    b"\xff\xfe",
    b"{oops",
    b"[]",
    b'"\\ud800"',
    to_bytes(envelope_doc("other.topic", {})),
    to_bytes({**envelope_doc(TOPIC, {"status": "x"}), "vendor": [1]}),
]


@pytest.mark.parametrize("value", POISON_VALUES)
def test_every_poison_message_becomes_a_valid_record(value: bytes | None) -> None:
    with pytest.raises(PoisonMessage) as info:
        decode_completion(TOPIC, value)
    exc = info.value
    record = _record(value, exc.parsed, exc.detail, reason=exc.reason)
    assert record["dlq_reason"] == exc.reason
    kept = record["failed_event_envelope"]
    if exc.parsed is not None:
        assert kept == exc.parsed  # the original message, unknown fields included
    else:
        assert isinstance(kept, dict) and "raw" in kept


def test_command_poison_becomes_a_record_with_the_original_command() -> None:
    doc = {**envelope_doc(Topic.PIPELINE_COMMAND, {"batch_id": ""}), "x_trace": "t-1"}
    with pytest.raises(PoisonMessage) as info:
        decode_command(to_bytes(doc))
    record = _record(to_bytes(doc), info.value.parsed, reason=info.value.reason, topic=Topic.PIPELINE_COMMAND)
    assert record["failed_event_envelope"] == doc


def _finite(parsed: Any) -> Any:
    """Return parsed JSON with NaN and infinities as null, as JSON output writes them."""
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return None
    if isinstance(parsed, list):
        return [_finite(v) for v in parsed]
    if isinstance(parsed, dict):
        return {k: _finite(v) for k, v in parsed.items()}
    return parsed


def _kept_faithfully(value: bytes, kept: Any) -> bool:
    if isinstance(kept, dict) and kept.get("encoding") == "base64":
        return base64.b64decode(kept["raw"]) == value
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return kept == {"raw": text} or kept == _finite(json.loads(value))


def test_non_finite_numbers_are_written_as_null() -> None:
    assert _record(b'{"score": NaN, "max": Infinity}')["failed_event_envelope"] == {"score": None, "max": None}


@given(st.binary(max_size=300))
def test_any_bytes_give_a_valid_record_that_keeps_them(value: bytes) -> None:
    assert _kept_faithfully(value, _record(value)["failed_event_envelope"])


@given(
    st.text(max_size=100)
    | st.builds(json.dumps, st.text(st.characters(blacklist_categories=()), max_size=30), ensure_ascii=st.booleans())
)
def test_any_text_gives_a_valid_record_that_keeps_it(text: str) -> None:
    value = text.encode("utf-8", "surrogatepass")  # lone surrogates make invalid UTF-8: kept as base64
    assert _kept_faithfully(value, _record(value)["failed_event_envelope"])


def test_huge_original_is_kept_as_a_preview() -> None:
    from streams.decoding import check_size
    from streams.dlq import MAX_ORIGINAL_BYTES, PREVIEW_BYTES

    value = b'{"data": "' + b"x" * (2 * MAX_ORIGINAL_BYTES) + b'"}'
    with pytest.raises(PoisonMessage, match="too large"):
        check_size(value, MAX_ORIGINAL_BYTES)
    check_size(value, len(value))  # at the limit is fine
    record = json.loads(build_dlq_record(topic="t", partition=0, offset=1, value=value, reason="too large", now=NOW))
    original = record["failed_event_envelope"]
    assert original["truncated"] is True and original["size_bytes"] == len(value)
    assert len(original["raw"]) == PREVIEW_BYTES
