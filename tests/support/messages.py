"""Platform messages for tests, built from the platform's own samples (both generations) with new ids."""

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
_BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _sample(generation: str, name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / generation / f"{name}.json").read_text()))


def _ts(seconds: float) -> str:
    return (_BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _stamp(message: dict[str, Any], at: float) -> dict[str, Any]:
    message["event_id"] = str(uuid.uuid4())
    message["event_timestamp"] = _ts(at)
    return message


def registered(
    batch_id: str, essays: list[str], user_id: str | None = "teacher-1", generation: str = "2026", at: float = 0
) -> dict[str, Any]:
    """Return a BatchEssaysRegistered envelope."""
    msg = copy.deepcopy(_sample(generation, "registered"))
    data = msg["data"]
    data["batch_id" if generation == "2025" else "entity_id"] = batch_id
    data["essay_ids"] = essays
    data["expected_essay_count"] = len(essays)
    if generation == "2026":
        data["user_id"] = user_id
    return _stamp(msg, at)


def spellcheck(
    batch_id: str, essay_id: str, ok: bool = True, generation: str = "2026", at: float = 1
) -> dict[str, Any]:
    """Return one essay's spellcheck completion."""
    msg = copy.deepcopy(_sample(generation, "spellcheck_success_essay-a"))
    data = msg["data"]
    ref = data["entity_ref"] if generation == "2025" else data
    ref["entity_id"], ref["parent_id"] = essay_id, batch_id
    meta = data["system_metadata"]["entity"] if generation == "2025" else data["system_metadata"]
    meta["entity_id"], meta["parent_id"] = essay_id, batch_id
    data["status"] = "spellchecked_success" if ok else "spellcheck_failed"
    data["timestamp"] = _ts(at)
    return _stamp(msg, at)


def phase_outcome(
    batch_id: str, phase: str, succeeded: list[str], failed: list[str] | None = None, at: float = 2
) -> dict[str, Any]:
    """Return an ELSBatchPhaseOutcomeV1 envelope (2026 generation only)."""
    msg = copy.deepcopy(_sample("2026", "els_phase_outcome_nlp"))
    data = msg["data"]
    data.update(
        batch_id=batch_id,
        phase_name=phase,
        processed_essays=[{"essay_id": e, "text_storage_id": None} for e in succeeded],
        failed_essay_ids=failed or [],
    )
    return _stamp(msg, at)


def cj_completed(batch_id: str, succeeded: list[str], failed: list[str] | None = None, at: float = 3) -> dict[str, Any]:
    """Return a 2026-generation CJ completion."""
    msg = copy.deepcopy(_sample("2026", "cj_assessment_completed"))
    data = msg["data"]
    data["entity_id"] = data["system_metadata"]["entity_id"] = batch_id
    data["processing_summary"].update(successful_essay_ids=succeeded, failed_essay_ids=failed or [])
    data["timestamp"] = _ts(at)
    return _stamp(msg, at)


def command(
    batch_id: str,
    pipeline: str,
    user_id: str | None = "teacher-1",
    correlation_id: str | None = None,
    generation: str = "2026",
    at: float = 10,
) -> dict[str, Any]:
    """Return a ClientBatchPipelineRequestV1 envelope."""
    msg = copy.deepcopy(_sample(generation, "client_pipeline_request"))
    corr = correlation_id or str(uuid.uuid4())
    msg["correlation_id"] = corr
    msg["data"].update(batch_id=batch_id, requested_pipeline=pipeline, client_correlation_id=corr)
    if generation == "2026":
        msg["data"]["user_id"] = user_id
    return _stamp(msg, at)


def as_bytes(message: dict[str, Any]) -> bytes:
    """Serialise a message as the platform does."""
    return json.dumps(message).encode()
