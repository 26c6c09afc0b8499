"""Poison messages on every input topic land in the DLQ with a reason; good messages around them still count."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from conductor.brokers import Broker
from contracts.topics import INPUT_TOPICS, Topic, dlq_topic
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import collect
from tests.support.processes import WorkerProcess, start_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The worker's limit is lowered so that a message over it still fits Apache Kafka's default message.max.bytes (1 MiB).
MAX_MESSAGE_BYTES = 256 * 1024
HUGE = 2 * MAX_MESSAGE_BYTES


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, WorkerProcess]]:
    workdir = tmp_path_factory.mktemp("poison")
    with new_broker(workdir) as broker, start_worker(
        broker, workdir, CONDUCTOR_WORKER_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES)
    ) as worker:
        yield broker, worker


def valid_message(topic: str, batch: str) -> dict[str, Any]:
    return {
        Topic.PIPELINE_COMMAND: lambda: m.command(batch, "spellcheck"),
        Topic.BATCH_REGISTERED: lambda: m.registered(batch, ["e1"]),
        Topic.SPELLCHECK_COMPLETED: lambda: m.spellcheck(batch, "e1"),
        Topic.CJ_ASSESSMENT_COMPLETED: lambda: m.cj_completed(batch, ["e1"]),
        Topic.ELS_PHASE_OUTCOME: lambda: m.phase_outcome(batch, "nlp", ["e1"]),
    }[topic]()


def poison_kinds(topic: str, batch: str) -> list[tuple[str, bytes, str]]:
    """(kind, value, expected words in dlq_reason) — eight kinds per topic."""
    wrong_types = valid_message(topic, batch)
    wrong_types["data"] = {k: [1, 2] for k in wrong_types["data"]}
    unknown_type = valid_message(topic, batch)
    unknown_type["event_type"] = "huleedu.unknown.event.v1"
    no_envelope = valid_message(topic, batch)
    del no_envelope["event_id"], no_envelope["event_timestamp"]
    no_batch = valid_message(topic, batch)
    data = no_batch["data"]
    # The batch id's fields: the essay's parent on spellcheck events (its entity id is the essay), else the entity.
    fields = ("parent_id", "system_metadata") if topic == Topic.SPELLCHECK_COMPLETED else ("batch_id", "entity_id")
    for field in (*fields, "entity_ref", "system_metadata"):
        data.pop(field, None)
    huge = valid_message(topic, batch)
    huge["data"]["padding"] = "x" * HUGE
    return [
        ("invalid utf-8", b"\xc3\x28\xff not text", "invalid UTF-8"),
        ("invalid json", b'{"event_id": ', "invalid JSON"),
        ("json array", b'[{"event_id": 1}]', "must be a JSON object"),
        ("missing envelope fields", m.as_bytes(no_envelope), "invalid envelope"),
        ("wrong payload types", m.as_bytes(wrong_types), "payload"),
        ("unknown event type", m.as_bytes(unknown_type), "unknown event type"),
        ("huge message", m.as_bytes(huge), "too large"),
        ("batch id missing", m.as_bytes(no_batch), "batch"),
    ]


@pytest.mark.parametrize("topic", INPUT_TOPICS)
async def test_eight_kinds_of_poison_are_dead_lettered_and_the_stream_goes_on(
    setup: tuple[Broker, WorkerProcess], topic: str
) -> None:
    broker, worker = setup
    batch = f"poison-{uuid.uuid4().hex[:8]}"
    marker = f"{batch}-poison".encode()
    kinds = poison_kinds(topic, batch)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=4 * HUGE)
    await producer.start()
    try:
        register = m.registered(batch, ["e1"])
        await producer.send_and_wait(register["event_type"], m.as_bytes(register), key=batch.encode())
        wait_until(
            lambda: worker.get(f"/batches/{batch}", timeout=5).status_code == 200, 30, "registered"
        )
        for _, value, _ in kinds:
            await producer.send_and_wait(topic, value, key=marker)
        good = valid_message(topic, batch)  # after the poison: must still be processed
        await producer.send_and_wait(topic, m.as_bytes(good), key=batch.encode())
    finally:
        await producer.stop()

    dead = await collect(
        broker.bootstrap, [dlq_topic(topic)], lambda kept: len(kept) >= len(kinds), keep=lambda r: r.key == marker
    )
    assert len(dead) == len(kinds)
    for (kind, _value, words), record in zip(kinds, dead, strict=True):
        body = json.loads(record.value)
        assert words.lower() in body["dlq_reason"].lower(), (kind, body["dlq_reason"])
        assert body["service"] == "batch_conductor_service" and body["timestamp"]
        assert body["additional_metadata"]["source_topic"] == topic
        assert len(record.value) < 256 * 1024, f"{kind}: DLQ record of {len(record.value)} bytes"

    if topic == Topic.PIPELINE_COMMAND:
        answers = await collect(
            broker.bootstrap,
            [Topic.PIPELINE_RESOLVED],
            lambda kept: len(kept) >= 1,
            keep=lambda r: json.loads(r.value)["data"]["batch_id"] == batch,
        )
        assert json.loads(answers[0].value)["data"]["final_pipeline"] == ["spellcheck"]
    elif topic != Topic.BATCH_REGISTERED:
        step = {Topic.SPELLCHECK_COMPLETED: "spellcheck", Topic.CJ_ASSESSMENT_COMPLETED: "cj_assessment"}.get(
            topic, "nlp"
        )

        def counted() -> bool:
            view = worker.get(f"/batches/{batch}", timeout=5).json()
            return any(s["step"] == step and s["status"] == "completed" for s in view["steps"])

        wait_until(counted, 30, f"good {step} event after the poison projected")
