"""PURE: Kafka bytes to typed envelopes and normalised state updates; bad input raises PoisonMessage."""

import json
import re
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import EventEnvelope, RawEnvelope
from contracts.events import (
    BatchEssaysRegistered,
    CJAssessmentCompletedV1,
    ELSBatchPhaseOutcomeV1,
    SpellcheckResultDataV1,
)
from contracts.state import BatchStateUpdate, Registration
from contracts.topics import Topic

M = TypeVar("M", bound=BaseModel)

# JSON may escape a lone UTF-16 surrogate ("\ud800"); json.loads accepts it, but it is not Unicode.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class PoisonMessage(Exception):
    """An input message that cannot be processed; goes to the DLQ with `reason`."""

    def __init__(self, reason: str, parsed: Any = None, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parsed = parsed
        self.detail = detail


def _describe(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix}{where}: {err['msg']}" if where else f"{prefix.rstrip('.')}: {err['msg']}")
    return "; ".join(parts)


def check_size(value: bytes | None, limit: int) -> None:
    """Refuse a message larger than `limit` bytes before spending any work on it."""
    if value is not None and len(value) > limit:
        raise PoisonMessage(f"message too large: {len(value)} bytes > {limit} (CONDUCTOR_WORKER_MAX_MESSAGE_BYTES)")


def parse_json(value: bytes | None) -> Any:
    """Decode UTF-8 JSON bytes, or raise PoisonMessage naming what is wrong."""
    if value is None:
        raise PoisonMessage("empty message (no value)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoisonMessage("invalid UTF-8", detail=str(exc)) from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    # A lone surrogate can never be serialized again (pydantic and str.encode refuse it): refuse it here,
    # or every output built from the message, DLQ record included, would raise.
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise PoisonMessage("invalid JSON: lone surrogate escape (not valid Unicode)") from None
    return parsed


def parse_envelope(topic: str, value: bytes | None) -> RawEnvelope:
    """Return the envelope of a message on `topic`, checking its event type is that topic."""
    return _parse_envelope(topic, value)[0]


def _parse_envelope(topic: str, value: bytes | None) -> tuple[RawEnvelope, Any]:
    # Also returns the JSON exactly as parsed, so a later payload error dead-letters the original message
    # (unknown envelope fields and original formatting kept), not the envelope as re-serialized by pydantic.
    parsed = parse_json(value)
    if not isinstance(parsed, dict):
        raise PoisonMessage(f"envelope must be a JSON object, got {type(parsed).__name__}", parsed)
    try:
        envelope = RawEnvelope.model_validate(parsed)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid envelope: {_describe(exc, '')}", parsed) from None
    if envelope.event_type != topic:
        raise PoisonMessage(f"unknown event type '{envelope.event_type}' on topic '{topic}'", parsed)
    return envelope, parsed


def _payload(envelope: RawEnvelope, model: type[M], parsed: Any) -> M:
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        raise PoisonMessage(f"invalid {model.__name__} payload: {_describe(exc, 'data.')}", parsed) from None


def _fast(topic: str, value: bytes | None, model: type[EventEnvelope[M]]) -> EventEnvelope[M] | None:
    """Parse and validate envelope and payload in one pass (pydantic's JSON parser), or None.

    The common case, a well-formed message, pays one parse. Anything else (None here) takes the step-by-step
    path below, which names the precise reason for the DLQ exactly as before. Messages with a surrogate escape
    take that path too, as only it refuses lone surrogates.
    """
    if value is None or _SURROGATE_ESCAPE_BYTES.search(value):
        return None
    try:
        envelope = model.model_validate_json(value)
    except ValidationError:
        return None
    return envelope if envelope.event_type == topic else None


_COMMAND = EventEnvelope[ClientBatchPipelineRequestV1]


def decode_command(value: bytes | None) -> EventEnvelope[ClientBatchPipelineRequestV1]:
    """Decode a pipeline command message."""
    fast = _fast(Topic.PIPELINE_COMMAND, value, _COMMAND)
    if fast is not None:
        return fast
    envelope, parsed = _parse_envelope(Topic.PIPELINE_COMMAND, value)
    payload = _payload(envelope, ClientBatchPipelineRequestV1, parsed)
    return _COMMAND(**{**dict(envelope), "data": payload})


_ENVELOPES: dict[type[BaseModel], type[EventEnvelope[Any]]] = {
    model: EventEnvelope[model]  # type: ignore[valid-type]
    for model in (BatchEssaysRegistered, SpellcheckResultDataV1, CJAssessmentCompletedV1, ELSBatchPhaseOutcomeV1)
}


def _decode_payload(topic: str, value: bytes | None, model: type[M]) -> tuple[str, datetime, M]:
    """Return the envelope's event id and timestamp and the typed payload."""
    fast = _fast(topic, value, _ENVELOPES[model])
    if fast is not None:
        return str(fast.event_id), fast.event_timestamp, fast.data
    envelope, parsed = _parse_envelope(topic, value)
    return str(envelope.event_id), envelope.event_timestamp, _payload(envelope, model, parsed)


def decode_completion(topic: str, value: bytes | None) -> BatchStateUpdate:
    """Decode a completion event on `topic` into a state update keyed by its batch id."""
    if topic == Topic.BATCH_REGISTERED:
        event_id, at, reg = _decode_payload(topic, value, BatchEssaysRegistered)
        return BatchStateUpdate(
            batch_id=reg.registered_batch_id,
            at=at,
            registration=Registration(
                essay_ids=tuple(dict.fromkeys(reg.essay_ids)),
                expected_essay_count=reg.expected_essay_count,
                user_id=reg.user_id,
                org_id=reg.org_id,
                at=at,
                event_id=event_id,
            ),
            source_topic=topic,
            source_event_id=event_id,
        )
    if topic == Topic.SPELLCHECK_COMPLETED:
        event_id, _, spell = _decode_payload(topic, value, SpellcheckResultDataV1)
        ok = spell.status == "spellchecked_success"
        essay_id, batch_id = spell.essay_id, spell.batch_id
        return BatchStateUpdate(
            batch_id=batch_id,
            at=spell.timestamp,
            step="spellcheck",
            succeeded=(essay_id,) if ok else (),
            failed=() if ok else (essay_id,),
            source_topic=topic,
            source_event_id=event_id,
        )
    if topic == Topic.CJ_ASSESSMENT_COMPLETED:
        event_id, _, cj = _decode_payload(topic, value, CJAssessmentCompletedV1)
        succeeded, failed = cj.essay_outcomes()
        return BatchStateUpdate(
            batch_id=cj.batch_id,
            at=cj.timestamp,
            step="cj_assessment",
            succeeded=tuple(succeeded),
            failed=tuple(failed),
            source_topic=topic,
            source_event_id=event_id,
        )
    if topic == Topic.ELS_PHASE_OUTCOME:
        event_id, at, outcome = _decode_payload(topic, value, ELSBatchPhaseOutcomeV1)
        return BatchStateUpdate(
            batch_id=outcome.batch_id,
            at=at,
            step=outcome.phase_name,
            succeeded=tuple(e.essay_id for e in outcome.processed_essays),
            failed=tuple(outcome.failed_essay_ids),
            source_topic=topic,
            source_event_id=event_id,
        )
    _, parsed = _parse_envelope(topic, value)
    raise PoisonMessage(f"topic '{topic}' carries no completion events", parsed)
