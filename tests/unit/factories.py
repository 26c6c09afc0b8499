"""Builders shared by the unit tests: sample messages, hand-written envelopes, catalogs and batch states."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from contracts.pipelines import PipelineCatalog, load_catalog
from contracts.state import BatchState, EssayOutcome, Registration

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "fixtures" / "samples"
PIPELINES_FILE = REPO / "pipelines.yaml"

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Return T0 plus `seconds`: the tests' clock."""
    return T0 + timedelta(seconds=seconds)


def sample_doc(generation: str, name: str) -> dict[str, Any]:
    """Return one of the platform's sample messages as a dict."""
    return json.loads((SAMPLES / generation / f"{name}.json").read_text(encoding="utf-8"))


def sample_bytes(generation: str, name: str) -> bytes:
    """Return one of the platform's sample messages as the bytes Kafka carries."""
    return (SAMPLES / generation / f"{name}.json").read_bytes()


@cache
def shipped_catalog() -> PipelineCatalog:
    """Return the catalog of the shipped pipelines.yaml (loaded once; the catalog is immutable)."""
    return load_catalog(PIPELINES_FILE)


def envelope_doc(event_type: str, data: Any, **overrides: Any) -> dict[str, Any]:
    """Return an envelope dict shaped like the wire contract, with `data` as payload."""
    doc: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_type": event_type,
        "event_timestamp": "2026-03-01T12:00:00Z",
        "source_service": "api_gateway_service",
        "schema_version": 1,
        "correlation_id": "00000000-0000-4000-8000-0000000000cc",
        "data_schema_uri": None,
        "data": data,
        "metadata": None,
    }
    doc.update(overrides)
    return doc


def to_bytes(doc: Any) -> bytes:
    """Serialize a document as the UTF-8 JSON Kafka carries."""
    return json.dumps(doc).encode("utf-8")


def step_doc(name: str, depends_on: list[str] | None = None) -> dict[str, Any]:
    """Return one step of a pipelines document with every required field."""
    return {
        "name": name,
        "service_name": f"{name}_service",
        "event_type": f"huleedu.batch.{name}.initiate.command.v1",
        "event_data_model": f"{name.title()}CommandDataV1",
        "depends_on": list(depends_on or []),
    }


def catalog_doc(**pipelines: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a pipelines document: one pipeline per keyword, its value the list of step dicts."""
    return {
        "pipelines": {name: {"description": f"{name} pipeline", "steps": steps} for name, steps in pipelines.items()}
    }


def registration(
    essays: list[str], user_id: str | None = "teacher-42", seconds: float = 0, event_id: str | None = None
) -> Registration:
    """Return a batch registration for `essays`."""
    return Registration(
        essay_ids=tuple(essays),
        expected_essay_count=max(len(essays), 1),
        user_id=user_id,
        at=at(seconds),
        event_id=event_id or f"reg-{seconds}",
    )


def batch_state(
    essays: list[str] | None,
    outcomes: dict[str, dict[str, bool]] | None = None,
    user_id: str | None = "teacher-42",
    batch_id: str = "batch-1",
) -> BatchState:
    """Return a batch state: registered for `essays` (None: unregistered) with `{step: {essay: ok}}` outcomes."""
    steps = {
        step: {essay: EssayOutcome(at=at(10), ok=ok) for essay, ok in per_essay.items()}
        for step, per_essay in (outcomes or {}).items()
    }
    reg = registration(essays, user_id) if essays is not None else None
    return BatchState(batch_id=batch_id, registration=reg, steps=steps)


def uuid_n(n: int) -> uuid.UUID:
    """Return a readable, fixed UUID numbered `n`."""
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")
