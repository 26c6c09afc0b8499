"""The worker against the real embedded broker: projection, resolution, ownership, redelivery, DLQ."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conductor.brokers import Broker
from contracts.topics import Topic, dlq_topic
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import collect, data_of, produce
from tests.support.processes import WorkerProcess, start_worker, wait_until

pytestmark = pytest.mark.integration

OUTPUTS = [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED, Topic.PHASE_SKIPPED]


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with new_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="module")
def worker(own_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    with start_worker(own_broker, tmp_path_factory.mktemp("worker")) as running:
        yield running


def new_batch() -> str:
    return f"batch-{uuid.uuid4().hex[:12]}"


async def send(broker: Broker, *msgs: dict[str, Any], keyed: bool = True) -> None:
    def key(msg: dict[str, Any]) -> bytes | None:
        data = msg["data"]
        batch = data.get("batch_id") or data.get("entity_id") or data.get("parent_id")
        return batch.encode() if keyed and batch else None

    await produce(broker.bootstrap, [(msg["event_type"], key(msg), m.as_bytes(msg)) for msg in msgs])


def state_view(worker: WorkerProcess, batch_id: str) -> dict[str, Any] | None:
    response = worker.get(f"/batches/{batch_id}", timeout=5)
    return dict(response.json()) if response.status_code == 200 else None


def wait_projected(worker: WorkerProcess, batch_id: str, check: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def ok() -> bool:
        view = state_view(worker, batch_id)
        if view is not None:
            seen.update(view)
        return view is not None and bool(check(view))

    wait_until(ok, 30, f"state of {batch_id} projected; last view {seen}")
    return seen


def step(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in view["steps"] if s["step"] == name)


async def answers(broker: Broker, correlation_id: str, count: int = 1) -> list[Any]:
    def mine(record: Any) -> bool:
        return str(json.loads(record.value).get("correlation_id")) == correlation_id

    def resolved_or_failed(kept: list[Any]) -> bool:
        return sum(r.topic != Topic.PHASE_SKIPPED for r in kept) >= count

    return await collect(broker.bootstrap, OUTPUTS, resolved_or_failed, keep=mine)


async def request(broker: Broker, batch_id: str, pipeline: str, **kw: Any) -> tuple[dict[str, Any], list[Any]]:
    cmd = m.command(batch_id, pipeline, **kw)
    await send(broker, cmd)
    records = await answers(broker, cmd["correlation_id"])
    final = next(r for r in records if r.topic != Topic.PHASE_SKIPPED)
    return {"topic": final.topic, **data_of(final)}, records


async def test_fresh_batch_resolves_full_pipeline(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    await send(own_broker, m.registered(batch, ["e1", "e2"]))
    wait_projected(worker, batch, lambda v: v["registered"])
    answer, records = await request(own_broker, batch, "ai_feedback")
    assert answer["topic"] == Topic.PIPELINE_RESOLVED
    assert answer["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]
    assert [s["name"] for s in answer["steps"]] == ["spellcheck", "nlp", "ai_feedback"]
    assert answer["pruned_steps"] == []
    assert all(r.key == batch.encode() for r in records)


async def test_spellcheck_done_for_all_essays_is_pruned(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    await send(own_broker, m.registered(batch, ["e1", "e2"]), m.spellcheck(batch, "e1"), m.spellcheck(batch, "e2"))
    wait_projected(worker, batch, lambda v: step(v, "spellcheck")["status"] == "completed")
    answer, records = await request(own_broker, batch, "ai_feedback")
    assert answer["final_pipeline"] == ["nlp", "ai_feedback"]
    assert answer["pruned_steps"] == ["spellcheck"]
    skipped = [data_of(r) for r in records if r.topic == Topic.PHASE_SKIPPED]
    assert [(s["phase_name"], s["skip_reason"], s["metadata"]["entity_id"]) for s in skipped] == [
        ("spellcheck", "already_completed", batch)
    ]


async def test_spellcheck_done_for_some_essays_prunes_nothing(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    await send(
        own_broker,
        m.registered(batch, ["e1", "e2", "e3"]),
        m.spellcheck(batch, "e1"),
        m.spellcheck(batch, "e2"),
        m.spellcheck(batch, "e3", ok=False),
    )
    wait_projected(worker, batch, lambda v: step(v, "spellcheck")["failed"] == 1)
    answer, _ = await request(own_broker, batch, "ai_feedback")
    assert answer["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]
    assert answer["pruned_steps"] == []


async def test_everything_done_gives_empty_pipeline(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    essays = ["e1", "e2"]
    await send(
        own_broker,
        m.registered(batch, essays),
        *[m.spellcheck(batch, e) for e in essays],
        m.phase_outcome(batch, "nlp", essays),
        m.phase_outcome(batch, "ai_feedback", essays),
    )
    wait_projected(worker, batch, lambda v: step(v, "ai_feedback")["status"] == "completed")
    answer, records = await request(own_broker, batch, "ai_feedback")
    assert answer["topic"] == Topic.PIPELINE_RESOLVED
    assert answer["final_pipeline"] == [] and answer["steps"] == []
    assert answer["pruned_steps"] == ["spellcheck", "nlp", "ai_feedback"]
    assert "nothing to run" in answer["analysis_summary"]
    assert sum(r.topic == Topic.PHASE_SKIPPED for r in records) == 3


async def test_later_success_clears_failure_and_events_before_registration_count(
    own_broker: Broker, worker: WorkerProcess
) -> None:
    batch = new_batch()
    # Completion events first, registration last: they are kept and count once the batch registers.
    await send(
        own_broker,
        m.spellcheck(batch, "e1", ok=False, at=1),
        m.spellcheck(batch, "e1", ok=True, at=5),
        m.spellcheck(batch, "e2", at=2),
        m.registered(batch, ["e1", "e2"], at=9),
    )
    view = wait_projected(worker, batch, lambda v: v["registered"] and step(v, "spellcheck")["succeeded"] == 2)
    assert step(view, "spellcheck")["status"] == "completed"
    answer, _ = await request(own_broker, batch, "nlp")
    assert answer["final_pipeline"] == ["nlp"]


async def test_2025_generation_messages_are_accepted(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    await send(
        own_broker,
        m.registered(batch, ["a", "b"], generation="2025"),
        m.spellcheck(batch, "a", generation="2025"),
        m.spellcheck(batch, "b", generation="2025"),
        keyed=False,
    )
    view = wait_projected(worker, batch, lambda v: step(v, "spellcheck")["succeeded"] == 2)
    assert view["user_id"] is None  # the 2025 generation registers batches without owner
    answer, _ = await request(own_broker, batch, "cj_assessment", generation="2025")
    assert answer["final_pipeline"] == ["cj_assessment"] and answer["user_id"] is None


@pytest.mark.parametrize(
    ("register", "pipeline", "user", "code"),
    [
        (True, "no_such_pipeline", "teacher-1", "UNKNOWN_PIPELINE"),
        (False, "spellcheck", "teacher-1", "BATCH_NOT_FOUND"),
        (True, "spellcheck", "intruder", "FORBIDDEN"),
    ],
)
async def test_failures_carry_reason_codes(
    own_broker: Broker, worker: WorkerProcess, register: bool, pipeline: str, user: str, code: str
) -> None:
    batch = new_batch()
    if register:
        await send(own_broker, m.registered(batch, ["e1"], user_id="teacher-1"))
        wait_projected(worker, batch, lambda v: v["registered"])
    answer, _ = await request(own_broker, batch, pipeline, user_id=user)
    assert answer["topic"] == Topic.PIPELINE_RESOLUTION_FAILED
    assert answer["reason_code"] == code and answer["message"]


async def test_redelivered_command_gets_byte_identical_answer(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    await send(own_broker, m.registered(batch, ["e1"]))
    wait_projected(worker, batch, lambda v: v["registered"])
    cmd = m.command(batch, "nlp")
    await send(own_broker, cmd)
    first = await answers(own_broker, cmd["correlation_id"])
    # The state changes in between: a naive re-resolution would now prune spellcheck.
    await send(own_broker, m.spellcheck(batch, "e1"))
    wait_projected(worker, batch, lambda v: step(v, "spellcheck")["status"] == "completed")
    await send(own_broker, cmd)
    both = await answers(own_broker, cmd["correlation_id"], count=2)
    assert len(both) == 2 and both[0].value == both[1].value == first[0].value
    outcome = worker.get(f"/batches/{batch}/requests/{cmd['correlation_id']}", timeout=5).json()
    assert outcome["final_pipeline"] == ["spellcheck", "nlp"]


async def test_unkeyed_command_is_rerouted_and_answered(own_broker: Broker, worker: WorkerProcess) -> None:
    batch = new_batch()
    await send(own_broker, m.registered(batch, ["e1"]))
    wait_projected(worker, batch, lambda v: v["registered"])
    cmd = m.command(batch, "spellcheck")
    await send(own_broker, cmd, keyed=False)
    records = await answers(own_broker, cmd["correlation_id"])
    assert data_of(records[-1])["final_pipeline"] == ["spellcheck"]


POISON: list[tuple[str, bytes, str]] = [
    ("invalid utf-8", b"\xff\xfe\xfa", "invalid UTF-8"),
    ("invalid json", b"{not json", "invalid JSON"),
    ("json array", b"[1, 2, 3]", "envelope must be a JSON object"),
    ("missing envelope fields", b'{"data": {}}', "invalid envelope"),
]


@pytest.mark.parametrize("topic", [Topic.SPELLCHECK_COMPLETED, Topic.PIPELINE_COMMAND])
async def test_poison_messages_go_to_dlq_and_the_stream_goes_on(
    own_broker: Broker, worker: WorkerProcess, topic: str
) -> None:
    batch = new_batch()
    wrong_type = m.spellcheck(batch, "e1")
    wrong_type["event_type"] = "huleedu.something.else.v1"
    bad_payload = m.command(batch, "spellcheck") if topic == Topic.PIPELINE_COMMAND else m.spellcheck(batch, "e1")
    bad_payload["data"]["status" if topic != Topic.PIPELINE_COMMAND else "client_correlation_id"] = "nope"
    marker = f"{batch}-marker"
    poison = [
        *POISON,
        ("unknown event type", m.as_bytes(wrong_type), "unknown event type"),
        ("wrong payload", m.as_bytes(bad_payload), "payload"),
    ]
    await produce(own_broker.bootstrap, [(topic, marker.encode(), value) for _, value, _ in poison])
    await send(own_broker, m.registered(batch, ["e1"]), m.spellcheck(batch, "e1"))
    wait_projected(worker, batch, lambda v: step(v, "spellcheck")["status"] == "completed")
    answer, _ = await request(own_broker, batch, "nlp")  # the command stream goes on too
    assert answer["final_pipeline"] == ["nlp"]

    dead = await collect(
        own_broker.bootstrap,
        [dlq_topic(topic)],
        lambda kept: len(kept) >= len(poison),
        keep=lambda r: r.key == marker.encode(),
    )
    reasons = [json.loads(r.value)["dlq_reason"] for r in dead]
    for (_, _, expected), reason in zip(poison, reasons, strict=True):
        assert expected in reason
    record = json.loads(dead[0].value)
    assert record["service"] == "batch_conductor_service" and record["schema_version"] == 1
    assert record["additional_metadata"]["source_topic"] == topic
    metrics = worker.get("/metrics", timeout=5).text
    assert f'conductor_worker_dlq_records_total{{topic="{topic}"}}' in metrics


def test_views_answer_404_for_unknown_keys(worker: WorkerProcess) -> None:
    assert worker.get("/batches/never-seen", timeout=5).status_code == 404
    assert worker.get(f"/batches/never-seen/requests/{uuid.uuid4()}").status_code == 404


def test_operator_views_are_on(worker: WorkerProcess) -> None:
    for path in ("/", "/router/", "/assignment/", "/healthz", "/metrics"):
        assert worker.get(f"{path}", timeout=5).status_code == 200, path
