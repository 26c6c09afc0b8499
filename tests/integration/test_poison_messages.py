"""Poison messages on every input topic land in the DLQ with a reason; the good message after them still counts.

Per input topic: 8 kinds of poison, then one valid message for a batch nothing before it mentions, all on one
partition (same key), so the good message is processed only if the stream went on past the poison. Once the worker
has committed its input to the end, every DLQ and answer topic is read to its end offsets: exactly the 8 poison
messages are dead-lettered, each naming its real source partition and offset, and the DLQ counter on the worker's
`/metrics` went up by 8.
"""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from conductor.brokers import Broker
from contracts.topics import INPUT_TOPICS, Topic, dlq_topic
from streams.dlq import PREVIEW_BYTES
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import read_to_end, wait_committed_to_end
from tests.support.metrics import sample_value
from tests.support.processes import WorkerProcess, start_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The worker's limit is lowered so that a message over it still fits Apache Kafka's default message.max.bytes (1 MiB).
MAX_MESSAGE_BYTES = 256 * 1024
HUGE = 2 * MAX_MESSAGE_BYTES
GROUP = "batch_conductor"  # the worker's app id: its consumer group
ANSWERS = [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED]
STEP = {
    Topic.SPELLCHECK_COMPLETED: "spellcheck",
    Topic.CJ_ASSESSMENT_COMPLETED: "cj_assessment",
    Topic.ELS_PHASE_OUTCOME: "nlp",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, WorkerProcess]]:
    workdir = tmp_path_factory.mktemp("poison")
    with (
        new_broker(workdir) as broker,
        start_worker(broker, workdir, CONDUCTOR_WORKER_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES)) as worker,
    ):
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


def worker_counter(worker: WorkerProcess, sample: str, **labels: str) -> float:
    return sample_value(worker.web_url, sample, **labels)


def view(worker: WorkerProcess, batch: str) -> httpx.Response:
    return worker.get(f"/batches/{batch}")


@pytest.mark.parametrize("topic", INPUT_TOPICS)
async def test_eight_kinds_of_poison_are_dead_lettered_and_the_stream_goes_on(
    setup: tuple[Broker, WorkerProcess], topic: str
) -> None:
    broker, worker = setup
    poison_batch = f"poison-{uuid.uuid4().hex[:8]}"  # what the poison messages name; never registered
    fresh = f"good-{uuid.uuid4().hex[:8]}"  # the good message's batch: nothing sent before it mentions it
    key = fresh.encode()  # one key for the poison and the good message: one partition, poison first
    kinds = poison_kinds(topic, poison_batch)
    dlq_before = worker_counter(worker, "conductor_worker_dlq_records_total", topic=topic)
    dead_before = worker_counter(worker, "conductor_worker_events_total", topic=topic, outcome="dead_lettered")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", max_request_size=4 * HUGE)
    await producer.start()
    try:
        if topic != Topic.BATCH_REGISTERED:  # the completion or command after the poison needs a registered batch
            register = m.registered(fresh, ["e1"])
            await producer.send_and_wait(register["event_type"], m.as_bytes(register), key=key)
            wait_until(lambda: view(worker, fresh).status_code == 200, 30, f"{fresh} registered")
        poisoned: dict[tuple[int, int], tuple[str, bytes, str]] = {}
        for kind, value, words in kinds:
            sent = await producer.send_and_wait(topic, value, key=key)
            poisoned[(sent.partition, sent.offset)] = (kind, value, words)
        good = valid_message(topic, fresh)
        after = await producer.send_and_wait(topic, m.as_bytes(good), key=key)
    finally:
        await producer.stop()
    assert len(poisoned) == len(kinds)
    assert all(p == after.partition and o < after.offset for p, o in poisoned), (poisoned.keys(), after)

    # The good message after the poison took effect.
    if topic == Topic.BATCH_REGISTERED:

        def registered() -> bool:
            response = view(worker, fresh)
            return response.status_code == 200 and response.json()["registered"]

        wait_until(registered, 30, f"good registration of {fresh} after the poison projected")
        assert view(worker, fresh).json()["expected_essay_count"] == 1
    elif topic != Topic.PIPELINE_COMMAND:

        def counted() -> bool:
            steps = view(worker, fresh).json()["steps"]
            return any(s["step"] == STEP[topic] and s["status"] == "completed" for s in steps)

        wait_until(counted, 30, f"good {STEP[topic]} event of {fresh} after the poison projected")

    # Everything the worker will write for this input is written once it committed the input to the end.
    await wait_committed_to_end(broker.bootstrap, GROUP, [topic])
    answers = [
        r
        for r in await read_to_end(broker.bootstrap, ANSWERS)
        if json.loads(r.value or b"{}")["data"]["batch_id"] in (fresh, poison_batch)
    ]
    if topic == Topic.PIPELINE_COMMAND:
        assert len(answers) == 1 and answers[0].topic == Topic.PIPELINE_RESOLVED, answers
        answer = json.loads(answers[0].value or b"{}")["data"]
        assert answer["batch_id"] == fresh and answer["final_pipeline"] == ["spellcheck"]
        assert answer["client_correlation_id"] == good["data"]["client_correlation_id"]
    else:
        assert answers == []
    assert view(worker, poison_batch).status_code == 404, "a poison message was projected or answered"

    dead = [r for r in await read_to_end(broker.bootstrap, [dlq_topic(topic)]) if r.key == key]
    sources = [
        (body["additional_metadata"]["partition"], body["additional_metadata"]["offset"])
        for body in (json.loads(r.value or b"{}") for r in dead)
    ]
    assert sorted(sources) == sorted(poisoned), "DLQ records do not match the poison messages one to one"
    for record in dead:
        body = json.loads(record.value or b"{}")
        meta = body["additional_metadata"]
        kind, value, words = poisoned[(meta["partition"], meta["offset"])]
        assert words.lower() in body["dlq_reason"].lower(), (kind, body["dlq_reason"])
        assert body["service"] == "batch_conductor_service" and body["timestamp"]
        assert meta["source_topic"] == topic
        assert len(record.value or b"") < 256 * 1024, f"{kind}: DLQ record of {len(record.value or b'')} bytes"
        if kind == "huge message":
            assert body["failed_event_envelope"] == {
                "raw": value[:PREVIEW_BYTES].decode(),
                "truncated": True,
                "size_bytes": len(value),
            }
            assert len(value) > HUGE and len(body["failed_event_envelope"]["raw"].encode()) == PREVIEW_BYTES == 1024

    # The DLQ counter on /metrics counted exactly these.
    assert worker_counter(worker, "conductor_worker_dlq_records_total", topic=topic) - dlq_before == len(kinds)
    dead_now = worker_counter(worker, "conductor_worker_events_total", topic=topic, outcome="dead_lettered")
    assert dead_now - dead_before == len(kinds)
