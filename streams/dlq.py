"""PURE: build the DLQ record for an input message that cannot be processed."""

import base64
import json
from datetime import datetime
from typing import Any

from contracts.events import DLQRecord


def original_message(value: bytes | None, parsed: Any) -> Any:
    """Return the failed message as the DLQ carries it: parsed JSON when it parses, else `{"raw": ...}`."""
    if parsed is not None:
        return parsed
    if value is None:
        return {"raw": None}
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    try:
        return {"raw": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw": base64.b64encode(value).decode("ascii"), "encoding": "base64"}


def build_dlq_record(
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    value: bytes | None,
    reason: str,
    parsed: Any = None,
    detail: str | None = None,
    now: datetime,
) -> bytes:
    """Return the serialized DLQ record for one failed input message."""
    metadata: dict[str, Any] = {"source_topic": topic, "partition": partition, "offset": offset}
    if detail:
        metadata["error_detail"] = detail
    record = DLQRecord(
        failed_event_envelope=original_message(value, parsed),
        dlq_reason=reason,
        timestamp=now,
        additional_metadata=metadata,
    )
    return record.model_dump_json().encode("utf-8")
