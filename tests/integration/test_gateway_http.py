"""The gateway as a real uvicorn process on a real broker; the worker's views scripted by a stub on a real socket.

Covers what is the gateway's own: the published command, validation and problem documents over HTTP, CORS, JWT,
rate limits, correlation ids in the audit log, metrics, and broker / worker outages. The real worker is in
test_gateway_worker.py.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from conductor.broker import free_port
from conductor.brokers import Broker
from contracts.topics import Topic
from tests.support.brokers import new_broker
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import collect
from tests.support.processes import wait_until
from tests.support.stub_worker import StubWorker
from tests.support.tokens import JWT_ENV, bearer, token

pytestmark = pytest.mark.integration

PARTITIONS = 3
HIGH_LIMITS = {
    f"CONDUCTOR_GATEWAY_RATE_LIMIT_{name}": "10000/second"
    for name in ("REQUEST_PIPELINE", "BATCH_STATUS", "REQUEST_OUTCOME", "LIST_PIPELINES")
}


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of this module's own: it checks the command topic's partition count and gets frozen."""
    with new_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="module")
def stub() -> Iterator[StubWorker]:
    with StubWorker() as worker:
        worker.register("b1", user_id="teacher-1")
        worker.register("shared", user_id=None)  # without owner: admins may act on it
        yield worker


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


def start(broker: Broker, workdir: Path, worker_url: str, **env: str) -> GatewayProcess:
    return GatewayProcess(broker.url, workdir, free_port(), worker_url, **env).start_and_wait()


@pytest.fixture(scope="module")
def gateway(own_broker: Broker, stub: StubWorker, workdir: Path) -> Iterator[GatewayProcess]:
    """Auth mode none, limits lifted, command topic created with PARTITIONS partitions."""
    process = start(own_broker, workdir, stub.url, CONDUCTOR_TOPIC_PARTITIONS=str(PARTITIONS), **HIGH_LIMITS)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def jwt_gateway(own_broker: Broker, stub: StubWorker, workdir: Path) -> Iterator[GatewayProcess]:
    """Auth mode jwt (HS256) with a small POST limit of 3 per second."""
    process = start(own_broker, workdir, stub.url, **JWT_ENV, CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE="3/second")
    yield process
    process.stop()


def post(gateway: GatewayProcess, batch: str = "b1", pipeline: str = "nlp", **headers: str) -> httpx.Response:
    with gateway.client() as client:
        return client.post(f"/v1/batches/{batch}/pipelines", json={"requested_pipeline": pipeline}, headers=headers)


def commands_for(broker: Broker, correlation_ids: set[str]) -> list[Any]:
    """Read the command topic from the start until every correlation id was seen; return their records."""

    def mine(record: Any) -> bool:
        return json.loads(record.value)["correlation_id"] in correlation_ids

    def complete(kept: list[Any]) -> bool:
        return {json.loads(r.value)["correlation_id"] for r in kept} >= correlation_ids

    return asyncio.run(collect(broker.bootstrap, [Topic.PIPELINE_COMMAND], complete, keep=mine))


def test_post_publishes_the_exact_envelope_keyed_by_batch(gateway: GatewayProcess, own_broker: Broker) -> None:
    cid = str(uuid.uuid4())
    response = post(gateway, pipeline="ai_feedback", **{"X-Correlation-ID": cid})
    assert response.status_code == 202, response.text
    assert response.json()["correlation_id"] == cid == response.headers["x-correlation-id"]
    [record] = commands_for(own_broker, {cid})
    assert record.key == b"b1"
    envelope = json.loads(record.value)
    assert set(envelope) == {
        "event_id", "event_type", "event_timestamp", "source_service", "schema_version", "correlation_id",
        "data_schema_uri", "data", "metadata",
    }  # fmt: skip
    assert envelope["event_type"] == "huleedu.commands.batch.pipeline.v1"
    assert envelope["source_service"] == "api_gateway_service"
    assert envelope["schema_version"] == 1 and envelope["correlation_id"] == cid
    uuid.UUID(envelope["event_id"])
    assert envelope["event_timestamp"].endswith("Z")
    assert envelope["data"] == {
        "batch_id": "b1",
        "requested_pipeline": "ai_feedback",
        "client_correlation_id": cid,
        "user_id": "dev-user",
        "is_retry": False,
        "retry_reason": None,
        "prompt_payload": None,
    }


def test_command_topic_is_created_with_the_configured_partitions(gateway: GatewayProcess, own_broker: Broker) -> None:
    async def partitions() -> set[int]:
        producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap)
        await producer.start()
        try:
            return set(await producer.partitions_for(Topic.PIPELINE_COMMAND))
        finally:
            await producer.stop()

    assert asyncio.run(partitions()) == set(range(PARTITIONS))


def test_every_endpoint_answers_over_http(gateway: GatewayProcess, stub: StubWorker) -> None:
    cid = str(uuid.uuid4())
    stub.outcomes[("b1", cid)] = {
        "client_correlation_id": cid,
        "requested_pipeline": "nlp",
        "user_id": "dev-user",
        "is_retry": False,
        "requested_at": "2026-11-01T12:00:00Z",
        "status": "failed",
        "final_pipeline": [],
        "pruned_steps": [],
        "steps": [],
        "analysis_summary": None,
        "reason_code": "BATCH_NOT_FOUND",
        "message": "no such batch",
    }
    with gateway.client() as client:
        assert client.get("/v1/batches/b1/status").json()["user_id"] == "teacher-1"
        assert client.get(f"/v1/batches/b1/pipelines/{cid}").json()["reason_code"] == "BATCH_NOT_FOUND"
        assert client.get(f"/v1/batches/b1/pipelines/{uuid.uuid4()}").json()["status"] == "pending"
        assert client.get("/v1/pipelines").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ready"
        assert "gateway_http_requests_total" in client.get("/metrics").text
        assert client.get("/openapi.json").json()["info"]["title"] == "Batch Conductor gateway"
        assert "swagger-ui" in client.get("/docs").text and "redoc" in client.get("/redoc").text


def test_problem_documents_over_http(gateway: GatewayProcess) -> None:
    with gateway.client() as client:
        unknown = client.post("/v1/batches/b1/pipelines", json={"requested_pipeline": "<b>nope</b>"})
        mismatch = client.post("/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp", "batch_id": "b2"})
        bad_id = client.post("/v1/batches/bad%20id/pipelines", json={"requested_pipeline": "nlp"})
        missing = client.post("/v1/batches/ghost/pipelines", json={"requested_pipeline": "nlp"})
        too_big = client.post("/v1/batches/b1/pipelines", content=b"{" + b" " * 70_000 + b"}", headers=_json())
    assert (unknown.status_code, unknown.json()["code"]) == (422, "UNKNOWN_PIPELINE")
    assert "<b>" not in unknown.text and unknown.headers["content-type"] == "application/problem+json"
    assert (mismatch.status_code, mismatch.json()["code"]) == (400, "BATCH_ID_MISMATCH")
    assert (bad_id.status_code, bad_id.json()["errors"][0]["field"]) == (422, "batch_id")
    assert (missing.status_code, missing.json()["code"]) == (404, "BATCH_NOT_FOUND")
    assert (too_big.status_code, too_big.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_cors_preflight_for_allowed_and_refused_origins(gateway: GatewayProcess) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}
    with gateway.client() as client:
        allowed = client.options("/v1/batches/b1/pipelines", headers={"Origin": "http://localhost:5173", **asked})
        refused = client.options("/v1/batches/b1/pipelines", headers={"Origin": "https://evil.example", **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def test_correlation_id_reaches_the_audit_log(gateway: GatewayProcess) -> None:
    cid = str(uuid.uuid4())
    assert post(gateway, **{"X-Correlation-ID": cid}).status_code == 202

    def audited() -> list[dict[str, Any]]:
        return [r for r in gateway.log_records() if r.get("logger") == "gateway.audit" and r["correlation_id"] == cid]

    wait_until(lambda: bool(audited()), 5, "audit record written")
    [record] = audited()
    assert (record["user"], record["batch_id"], record["pipeline"], record["status"]) == ("dev-user", "b1", "nlp", 202)
    assert record["action"] == "request_pipeline" and record["latency_ms"] > 0
    assert any("AUTH MODE 'none'" in r.get("message", "") for r in gateway.log_records())


def test_jwt_accept_refuse_and_ownership(jwt_gateway: GatewayProcess, own_broker: Broker) -> None:
    accepted = post(jwt_gateway, **bearer(token("teacher-1")))
    assert accepted.status_code == 202
    [record] = commands_for(own_broker, {accepted.json()["correlation_id"]})
    assert json.loads(record.value)["data"]["user_id"] == "teacher-1"
    assert post(jwt_gateway).status_code == 401
    assert post(jwt_gateway, **bearer(token("teacher-1", exp=int(time.time()) - 60))).json()["code"] == "INVALID_TOKEN"
    assert post(jwt_gateway, **bearer(token("teacher-2"))).json()["code"] == "FORBIDDEN"
    with jwt_gateway.client() as client:
        assert client.get("/v1/batches/b1/status", headers=bearer(token("teacher-2"))).status_code == 403
        assert client.get("/v1/batches/b1/status", headers=bearer(token("ops", roles=["admin"]))).status_code == 200


def test_rate_limit_burst_then_429_per_client(jwt_gateway: GatewayProcess) -> None:
    alice = bearer(token("alice", roles=["admin"]))
    bob = bearer(token("bob", roles=["admin"]))
    with jwt_gateway.client() as client:
        # A burst of 3 per second: wait for a fresh second so the burst fits in one window.
        wait_until(lambda: time.time() % 1 < 0.3, 2, "start of a second", interval=0.01)
        codes = [
            client.post("/v1/batches/shared/pipelines", json={"requested_pipeline": "nlp"}, headers=alice)
            for _ in range(4)
        ]
        other = client.post("/v1/batches/shared/pipelines", json={"requested_pipeline": "nlp"}, headers=bob)
    assert [r.status_code for r in codes] == [202, 202, 202, 429]
    refused = codes[-1]
    assert refused.json()["code"] == "RATE_LIMITED" and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0" and refused.headers["ratelimit-limit"] == "3"
    assert other.status_code == 202  # another client has its own allowance
    with jwt_gateway.client() as client:
        assert 'gateway_rate_limited_total{endpoint="request_pipeline"}' in client.get("/metrics").text


def test_frozen_broker_gives_a_bounded_503_and_the_gateway_recovers(
    gateway: GatewayProcess, own_broker: Broker
) -> None:
    assert post(gateway).status_code == 202
    own_broker.freeze()
    try:
        started = time.monotonic()
        response = post(gateway)
        elapsed = time.monotonic() - started
        assert response.status_code == 503 and response.json()["code"] == "BROKER_UNAVAILABLE"
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < 4.0, f"took {elapsed:.1f}s"
        with gateway.client() as client:
            assert client.get("/readyz").json()["checks"]["broker"] == "failing"
    finally:
        own_broker.thaw()
    wait_until(lambda: post(gateway).status_code == 202, 15, "POST accepted again after the broker came back")
    with gateway.client() as client:
        assert 'gateway_publish_failures_total{reason="timeout"}' in client.get("/metrics").text


def test_gateway_started_before_the_broker_connects_by_itself(stub: StubWorker, tmp_path: Path) -> None:
    late = new_broker(tmp_path / "late")
    process = GatewayProcess(late.url, tmp_path, free_port(), stub.url).start_and_wait(broker=False)
    try:
        response = post(process)
        assert response.status_code == 503 and response.json()["code"] == "BROKER_UNAVAILABLE"
        with late:
            wait_until(process.producer_connected, 30, "gateway connected to the late broker")
            assert post(process).status_code == 202
    finally:
        process.stop()


def test_worker_rebalancing_is_retried_and_an_absent_worker_is_a_bounded_503(
    gateway: GatewayProcess, stub: StubWorker, own_broker: Broker, workdir: Path
) -> None:
    stub.unavailable = 2  # two 503s, as while partitions rebalance; the third attempt answers
    with gateway.client() as client:
        assert client.get("/v1/batches/b1/status").status_code == 200
    nowhere = start(own_broker, workdir, f"http://127.0.0.1:{free_port()}")
    try:
        started = time.monotonic()
        with nowhere.client() as client:
            response = client.get("/v1/batches/b1/status")
        assert response.status_code == 503 and response.json()["code"] == "WORKER_UNAVAILABLE"
        assert time.monotonic() - started < 5.0 and response.headers["retry-after"]
        with nowhere.client() as client:
            assert client.get("/readyz").json()["checks"] == {"broker": "ok", "worker": "failing"}
    finally:
        nowhere.stop()


def test_internal_token_is_sent_to_the_worker(own_broker: Broker, workdir: Path) -> None:
    with StubWorker(token="shared-secret") as guarded:
        guarded.register("b1")
        right = start(own_broker, workdir, guarded.url, CONDUCTOR_INTERNAL_TOKEN="shared-secret")
        wrong = start(own_broker, workdir, guarded.url, CONDUCTOR_INTERNAL_TOKEN="not-it")
        try:
            with right.client() as client:
                assert client.get("/v1/batches/b1/status").status_code == 200
            with wrong.client() as client:
                response = client.get("/v1/batches/b1/status")
            assert response.status_code == 502 and response.json()["code"] == "WORKER_ERROR"
            assert "not-it" not in response.text
        finally:
            right.stop()
            wrong.stop()
