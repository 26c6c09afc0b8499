"""PURE: build the DLQ record for an input message that cannot be processed."""

import base64
import json
from datetime import datetime
from typing import Any

from contracts.events import DLQRecord


def _utf8_safe(parsed: Any) -> bool:
    # Parsed JSON holding an escaped lone surrogate ("\ud800") cannot be written out again as UTF-8.
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A DLQ record must stay producible: a larger original is kept as a preview of its first bytes.
MAX_ORIGINAL_BYTES = 64 * 1024
PREVIEW_BYTES = 1024


def original_message(value: bytes | None, parsed: Any) -> Any:
    """Return the failed message as the DLQ carries it: parsed JSON when it parses, else `{"raw": ...}`."""
    if value is not None and len(value) > MAX_ORIGINAL_BYTES:
        preview = value[:PREVIEW_BYTES].decode("utf-8", errors="replace")
        return {"raw": preview, "truncated": True, "size_bytes": len(value)}
    if parsed is not None and _utf8_safe(parsed):
        return parsed
    if value is None:
        return {"raw": None}
    try:
        reparsed = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    else:
        if _utf8_safe(reparsed):
            return reparsed
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
