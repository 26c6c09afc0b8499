"""End to end through the real processes: HTTP POST -> gateway -> Kafka -> worker -> resolved event (BOS side)."""

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from contracts.topics import Topic
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import data_of, produce, read_to_end, wait_committed_to_end
from tests.support.metrics import sample_value
from tests.support.processes import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

DEV_USER = "dev-user"  # the gateway's user in auth mode `none`
ANSWERS = [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED]
GROUP = "batch_conductor"  # the worker's app id: its consumer group
REQUESTS = 50


class Stack:
    """Broker, worker and gateway, all real, on free loopback ports."""

    def __init__(self, broker: Broker, worker: WorkerProcess, gateway: GatewayProcess) -> None:
        self.broker, self.worker, self.gateway = broker, worker, gateway

    def post(self, batch_id: str, pipeline: str, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}/v1/batches/{batch_id}/pipelines",
            json={"requested_pipeline": pipeline},
            headers=headers,
            timeout=10,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.gateway.url}{path}", timeout=10)

    async def register(self, batch_id: str, essays: list[str], owner: str = DEV_USER, *events: dict[str, Any]) -> None:
        msgs = [m.registered(batch_id, essays, user_id=owner), *events]
        await produce(self.broker.bootstrap, [(x["event_type"], batch_id.encode(), m.as_bytes(x)) for x in msgs])
        wait_until(lambda: self.get(f"/v1/batches/{batch_id}/status").status_code == 200, 30, f"{batch_id} visible")

    async def answers(self, correlation_ids: set[str], timeout: float = 30) -> list[Any]:
        """Return every answer on BOS's topics to these requests, read to the end once the worker is done.

        The worker commits a command's offset only after its answer is acknowledged: once it has committed the
        command topic to its end, every answer it will give is on the topics, and they are read to their end
        offsets, so a late duplicate or a second, different answer is in what the tests assert on.
        """
        await wait_committed_to_end(self.broker.bootstrap, GROUP, [Topic.PIPELINE_COMMAND], timeout)
        records = await read_to_end(self.broker.bootstrap, ANSWERS)
        mine = [r for r in records if data_of(r)["client_correlation_id"] in correlation_ids]
        missing = correlation_ids - {data_of(r)["client_correlation_id"] for r in mine}
        assert not missing, f"{len(missing)} request(s) unanswered: {sorted(missing)[:5]}"
        return mine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    with new_broker(workdir) as broker:
        worker = WorkerProcess(broker.url, workdir, free_port()).start_and_wait()
        # One test client sends every request: lift the per-client limits (rate limiting has its own tests).
        limits = {
            f"CONDUCTOR_GATEWAY_RATE_LIMIT_{name}": "1000/second"
            for name in ("REQUEST_PIPELINE", "BATCH_STATUS", "REQUEST_OUTCOME")
        }
        gateway = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, **limits).start_and_wait()
        try:
            yield Stack(broker, worker, gateway)
        finally:
            gateway.stop()
            worker.stop()


def new_batch() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


async def test_complete_workflow(stack: Stack) -> None:
    batch = new_batch()
    await stack.register(batch, ["e1", "e2"])
    response = stack.post(batch, "ai_feedback")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted" and accepted["batch_id"] == batch
    correlation_id = accepted["correlation_id"]

    records = await stack.answers({correlation_id})
    assert [r.topic for r in records] == [Topic.PIPELINE_RESOLVED]
    resolved = data_of(records[0])
    assert resolved["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]
    assert [s["event_type"] for s in resolved["steps"]] == [
        "huleedu.els.spellcheck.initiate.command.v1",
        "huleedu.batch.nlp.initiate.command.v1",
        "huleedu.batch.ai_feedback.initiate.command.v1",
    ]
    assert resolved["user_id"] == DEV_USER and records[0].key == batch.encode()

    outcome = stack.get(accepted["status_url"]).json()
    assert outcome["status"] == "resolved"
    assert outcome["final_pipeline"] == resolved["final_pipeline"]


async def test_pruning_after_completion_events(stack: Stack) -> None:
    batch = new_batch()
    essays = ["e1", "e2", "e3"]
    await stack.register(batch, essays, DEV_USER, *[m.spellcheck(batch, e) for e in essays])
    wait_until(
        lambda: stack.get(f"/v1/batches/{batch}/status").json()["steps"][0]["status"] == "completed",
        30,
        "spellcheck completed",
    )
    correlation_id = stack.post(batch, "ai_feedback").json()["correlation_id"]
    [answer] = await stack.answers({correlation_id})  # one answer, nothing more on the topics
    resolved = data_of(answer)
    assert resolved["final_pipeline"] == ["nlp", "ai_feedback"]
    assert resolved["pruned_steps"] == ["spellcheck"]


async def test_fifty_concurrent_requests_each_answered_once(stack: Stack) -> None:
    batches = [new_batch() for _ in range(5)]
    for batch in batches:
        await stack.register(batch, ["e1"])
    before = resolved_counts(stack)
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=20) as client:
        responses = await asyncio.gather(
            *[
                client.post(f"/v1/batches/{batches[i % 5]}/pipelines", json={"requested_pipeline": "nlp"})
                for i in range(REQUESTS)
            ]
        )
    assert [r.status_code for r in responses] == [202] * REQUESTS
    sent = {r.json()["correlation_id"] for r in responses}
    assert len(sent) == REQUESTS
    records = await stack.answers(sent, timeout=60)
    counts = Counter(data_of(r)["client_correlation_id"] for r in records)
    assert set(counts) == sent and set(counts.values()) == {1}, {k: n for k, n in counts.items() if n != 1}
    assert all(json.loads(r.value)["correlation_id"] == data_of(r)["client_correlation_id"] for r in records)
    assert {r.topic for r in records} == {Topic.PIPELINE_RESOLVED}
    assert all(data_of(r)["final_pipeline"] == ["spellcheck", "nlp"] for r in records)
    # The worker's /metrics counted each answer once.
    assert [after - earlier for after, earlier in zip(resolved_counts(stack), before, strict=True)] == [REQUESTS] * 2


def resolved_counts(stack: Stack) -> tuple[float, float]:
    """Return the worker's counts of resolved commands: by outcome, and as handled input events."""
    url = stack.worker.web_url
    return (
        sample_value(url, "conductor_worker_resolutions_total", outcome="resolved"),
        sample_value(url, "conductor_worker_events_total", topic=Topic.PIPELINE_COMMAND, outcome="resolved"),
    )


def test_unknown_batch_is_404(stack: Stack) -> None:
    response = stack.post(new_batch(), "spellcheck")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert stack.get(f"/v1/batches/{new_batch()}/status").status_code == 404


def test_unknown_pipeline_is_422_naming_the_valid_ones(stack: Stack) -> None:
    response = stack.post(new_batch(), "spelcheck")
    assert response.status_code == 422
    problem = response.json()
    assert all(name in problem["detail"] for name in ["spellcheck", "nlp", "cj_assessment", "ai_feedback"])
    assert problem["errors"][0]["field"] == "requested_pipeline"


async def test_foreign_owner_is_refused_by_the_worker(stack: Stack) -> None:
    # In auth mode `none` the gateway lets everyone through; the worker's ownership check still holds.
    batch = new_batch()
    await stack.register(batch, ["e1"], owner="another-teacher")
    accepted = stack.post(batch, "spellcheck").json()
    [record] = await stack.answers({accepted["correlation_id"]})
    assert record.topic == Topic.PIPELINE_RESOLUTION_FAILED
    assert data_of(record)["reason_code"] == "FORBIDDEN"
    outcome = stack.get(accepted["status_url"]).json()
    assert (outcome["status"], outcome["reason_code"]) == ("failed", "FORBIDDEN")


async def test_correlation_id_flows_from_header_to_resolved_event(stack: Stack) -> None:
    batch = new_batch()
    await stack.register(batch, ["e1"])
    mine = str(uuid.uuid4())
    response = stack.post(batch, "spellcheck", **{"X-Correlation-ID": mine})
    assert response.headers["X-Correlation-ID"] == mine
    assert response.json()["correlation_id"] == mine
    [record] = await stack.answers({mine})
    envelope = json.loads(record.value)
    assert envelope["correlation_id"] == mine and envelope["data"]["client_correlation_id"] == mine
    assert envelope["source_service"] == "batch_conductor_service"


async def test_status_reflects_the_outcome(stack: Stack) -> None:
    batch = new_batch()
    await stack.register(batch, ["e1", "e2"])
    accepted = stack.post(batch, "cj_assessment").json()
    await stack.answers({accepted["correlation_id"]})

    def listed() -> bool:
        status = stack.get(f"/v1/batches/{batch}/status").json()
        return any(r["client_correlation_id"] == accepted["correlation_id"] for r in status["recent_requests"])

    wait_until(listed, 15, "request listed in status")
    status = stack.get(f"/v1/batches/{batch}/status").json()
    request = status["recent_requests"][0]
    assert request["status"] == "resolved"
    assert request["final_pipeline"] == ["spellcheck", "cj_assessment"]
    assert status["essay_count"] == 2 and status["user_id"] == DEV_USER
