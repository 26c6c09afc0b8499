"""Demo data for `conductor dev --demo`: a few registered batches with some steps already complete."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conductor.kafka_admin import produce
from contracts.envelope import utc_iso
from contracts.topics import Topic

DEMO_NAMESPACE = uuid.UUID("0b5e7c1e-8d7a-4d35-9f1b-6a2f4c1d9e10")

# batch id -> (essays, {step: essays that succeeded}, {step: essays that failed}, what to try)
DEMO_BATCHES: dict[str, tuple[int, dict[str, int], dict[str, int], str]] = {
    "demo-fresh": (3, {}, {}, "ai_feedback resolves to spellcheck -> nlp -> ai_feedback"),
    "demo-spellchecked": (3, {"spellcheck": 3}, {}, "ai_feedback prunes spellcheck"),
    "demo-partial": (3, {"spellcheck": 2}, {"spellcheck": 1}, "one essay failed spellcheck: nothing is pruned"),
    "demo-analysed": (3, {"spellcheck": 3, "nlp": 3}, {}, "ai_feedback prunes spellcheck and nlp"),
    "demo-done": (2, {"spellcheck": 2, "nlp": 2, "ai_feedback": 2}, {}, "ai_feedback: nothing left to run"),
}


def _envelope(topic: str, data: dict[str, Any], at: datetime, seed: str) -> bytes:
    message = {
        "event_id": str(uuid.uuid5(DEMO_NAMESPACE, seed)),
        "event_type": topic,
        "event_timestamp": utc_iso(at),
        "source_service": "conductor_demo",
        "schema_version": 1,
        "correlation_id": str(uuid.uuid5(DEMO_NAMESPACE, f"corr:{seed}")),
        "data_schema_uri": None,
        "data": data,
        "metadata": None,
    }
    return json.dumps(message).encode()


def demo_messages(owner: str, now: datetime | None = None) -> list[tuple[str, bytes, bytes]]:
    """Return (topic, key, value) messages in the platform's 2026 shapes for every demo batch."""
    at = now or datetime.now(UTC)
    out: list[tuple[str, bytes, bytes]] = []
    for batch, (count, succeeded, failed, _) in DEMO_BATCHES.items():
        essays = [f"{batch}-essay-{i + 1}" for i in range(count)]
        key = batch.encode()
        registered = {
            "event": "batch.essays.registered",
            "entity_id": batch,
            "expected_essay_count": count,
            "essay_ids": essays,
            "course_code": "ENG5",
            "user_id": owner,
            "org_id": None,
            "class_id": None,
        }
        out.append((Topic.BATCH_REGISTERED, key, _envelope(Topic.BATCH_REGISTERED, registered, at, f"reg:{batch}")))
        for step in dict.fromkeys([*succeeded, *failed]):
            ok, bad = essays[: succeeded.get(step, 0)], essays[len(essays) - failed.get(step, 0) :]
            bad = bad if failed.get(step) else []
            if step == "spellcheck":
                for essay in ok + bad:
                    data: dict[str, Any] = {
                        "event_name": "essay.spellcheck.completed",
                        "entity_id": essay,
                        "entity_type": "essay",
                        "parent_id": batch,
                        "timestamp": utc_iso(at + timedelta(seconds=1)),
                        "status": "spellchecked_success" if essay in ok else "spellcheck_failed",
                        "system_metadata": {"entity_id": essay, "entity_type": "essay", "parent_id": batch},
                        "corrections_made": 2,
                    }
                    out.append(
                        (Topic.SPELLCHECK_COMPLETED, key, _envelope(Topic.SPELLCHECK_COMPLETED, data, at, essay))
                    )
            else:
                data = {
                    "batch_id": batch,
                    "phase_name": step,
                    "phase_status": "completed_successfully" if not bad else "completed_with_failures",
                    "processed_essays": [{"essay_id": e, "text_storage_id": None} for e in ok],
                    "failed_essay_ids": bad,
                }
                out.append(
                    (Topic.ELS_PHASE_OUTCOME, key, _envelope(Topic.ELS_PHASE_OUTCOME, data, at, f"{step}:{batch}"))
                )
    return out


async def seed_demo(bootstrap: str, owner: str) -> int:
    """Publish the demo batches and their completion events; return how many messages were sent."""
    return await produce(bootstrap, demo_messages(owner))
