"""Issue 12, push: a batch's event stream on a real broker, worker and gateways (auth `none` and `jwt`).

The worker's long-poll view, the SSE contract (snapshot, request, progress; ids = batch versions), resumption with
Last-Event-ID, stream tickets, the stream caps, heartbeats, the stream lifetime and a clean shutdown.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conductor.broker import EmbeddedBroker, free_port
from tests.support import messages as m
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import produce
from tests.support.processes import WorkerProcess, wait_until
from tests.support.sse import EventStream
from tests.support.tokens import JWT_ENV, bearer, token

pytestmark = pytest.mark.integration

INTERNAL = {"CONDUCTOR_INTERNAL_TOKEN": "push-test-internal-token"}
FAST = {
    **{f"CONDUCTOR_GATEWAY_RATE_LIMIT_{n}": "1000/second" for n in ("BATCH_STATUS", "REQUEST_OUTCOME", "BATCH_EVENTS")},
    "CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE": "1000/second",
    "CONDUCTOR_GATEWAY_STREAM_HEARTBEAT_SECONDS": "0.5",
}
OWNER, OTHER = "teacher-push", "teacher-other"


class Stack:
    def __init__(self, broker: EmbeddedBroker, worker: WorkerProcess, open_gw: GatewayProcess, jwt_gw: GatewayProcess):
        self.broker, self.worker, self.open, self.jwt = broker, worker, open_gw, jwt_gw

    def send(self, *messages: dict[str, Any], key: str) -> None:
        asyncio.run(
            produce(self.broker.bootstrap, [(msg["event_type"], key.encode(), m.as_bytes(msg)) for msg in messages])
        )

    def register(self, owner: str = "dev-user", essays: int = 2) -> str:
        batch = f"push-{uuid.uuid4().hex[:10]}"
        self.send(m.registered(batch, [f"{batch}-e{i}" for i in range(essays)], user_id=owner), key=batch)
        wait_until(lambda: self.worker_view(batch).status_code == 200, 30, f"{batch} registered")
        return batch

    def spellchecked(self, batch: str, essay: int, at: float = 1) -> None:
        self.send(m.spellcheck(batch, f"{batch}-e{essay}", at=at), key=f"{batch}-e{essay}")

    def worker_view(self, batch: str, **params: Any) -> httpx.Response:
        return httpx.get(
            f"{self.worker.web_url}/batches/{batch}/changes",
            params=params,
            headers={"X-Internal-Token": INTERNAL["CONDUCTOR_INTERNAL_TOKEN"]},
            timeout=30,
            trust_env=False,
        )


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("push")
    with WorkerProcess(broker.url, workdir, free_port(), **INTERNAL) as worker:
        open_gw = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, **INTERNAL, **FAST)
        jwt_gw = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, **INTERNAL, **FAST, **JWT_ENV)
        try:
            yield Stack(broker, worker, open_gw.start_and_wait(), jwt_gw.start_and_wait())
        finally:
            open_gw.stop()
            jwt_gw.stop()


def _get(gateway: GatewayProcess, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with gateway.client() as client:
        return client.get(path, headers=headers or {})


def _post(
    gateway: GatewayProcess, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    with gateway.client() as client:
        return client.post(path, json=body, headers=headers or {})


# ---- the worker's long-poll view ----------------------------------------------------------------------------------


def test_the_worker_long_poll_answers_on_a_write_and_204_on_timeout(stack: Stack) -> None:
    batch = stack.register()
    first = stack.worker_view(batch)  # after=-1: at once
    version = first.json()["status"]["version"]
    assert first.status_code == 200 and version >= 1
    started = time.monotonic()
    assert stack.worker_view(batch, after=version, wait=0.5).status_code == 204
    assert 0.4 < time.monotonic() - started < 5
    assert stack.worker_view(f"ghost-{uuid.uuid4().hex[:6]}").status_code == 404
    assert stack.worker_view(batch, wait=600).status_code == 400
    assert httpx.get(f"{stack.worker.web_url}/batches/{batch}/changes", trust_env=False).status_code == 401

    answers: list[tuple[float, httpx.Response]] = []

    async def poll_while_writing() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            poll = asyncio.create_task(
                client.get(
                    f"{stack.worker.web_url}/batches/{batch}/changes",
                    params={"after": version, "wait": 20},
                    headers={"X-Internal-Token": INTERNAL["CONDUCTOR_INTERNAL_TOKEN"]},
                )
            )
            await asyncio.sleep(0.5)
            assert not poll.done()
            await asyncio.to_thread(stack.spellchecked, batch, 0)
            answers.append((time.monotonic(), await poll))

    written = time.monotonic()
    asyncio.run(poll_while_writing())
    at, answer = answers[0]
    body = answer.json()
    assert answer.status_code == 200 and body["status"]["version"] == version + 1
    assert body["progress_version"] == version + 1 and body["changed_at"] > 0
    assert at - written < 10  # woken by the write, not by the 20 s wait
    assert body["status"]["steps"][0] == {
        "step": "spellcheck",
        "status": "in_progress",
        "succeeded": 1,
        "failed": 0,
        "pending": 1,
    }


# ---- the stream contract ------------------------------------------------------------------------------------------


def test_a_new_stream_starts_with_the_status_as_snapshot(stack: Stack) -> None:
    batch = stack.register()
    status = _get(stack.open, f"/v1/batches/{batch}/status").json()
    with EventStream(f"{stack.open.url}/v1/batches/{batch}/events") as stream:
        stream.wait_for(lambda events: len(events) >= 1, what="snapshot")
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        snapshot = stream.events[0]
        assert snapshot.event == "snapshot" and snapshot.data == status
        assert snapshot.id == str(status["version"]) and "\n" not in snapshot.raw
        wait_until(lambda: "heartbeat" in stream.comments, 10, "a heartbeat comment")


def test_requests_and_progress_arrive_as_they_happen(stack: Stack) -> None:
    batch = stack.register()
    with EventStream(f"{stack.open.url}/v1/batches/{batch}/events") as stream:
        stream.wait_for(lambda events: len(events) >= 1, what="snapshot")
        accepted = _post(stack.open, f"/v1/batches/{batch}/pipelines", {"requested_pipeline": "ai_feedback"})
        assert accepted.status_code == 202
        cid = accepted.json()["correlation_id"]
        stream.wait_for(lambda _: any(e.data["status"] == "resolved" for e in stream.of("request")), what="resolved")
        requests = [e for e in stream.of("request") if e.data["correlation_id"] == cid]
        assert [e.data["status"] for e in requests] == ["pending", "resolved"]
        assert requests[-1].data == _get(stack.open, accepted.json()["status_url"]).json()
        assert requests[-1].data["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]

        stack.spellchecked(batch, 0)
        stream.wait_for(lambda _: len(stream.of("progress")) >= 1, what="progress")
        progress = stream.of("progress")[0]
        status = _get(stack.open, f"/v1/batches/{batch}/status").json()
        assert progress.data == {"batch_id": batch, "steps": status["steps"]}
        assert progress.id == str(status["version"])
        ids = [int(e.id) for e in stream.events if e.id]
        assert ids == sorted(ids) and ids[-1] == status["version"]


def test_a_reconnect_resumes_without_a_gap_or_starts_with_a_snapshot(stack: Stack) -> None:
    batch = stack.register()
    url = f"{stack.open.url}/v1/batches/{batch}/events"
    with EventStream(url) as stream:
        stream.wait_for(lambda events: len(events) >= 1, what="snapshot")
        last_seen = stream.events[-1].id
    # While no stream is open: a request is resolved and an essay is spellchecked.
    accepted = _post(stack.open, f"/v1/batches/{batch}/pipelines", {"requested_pipeline": "nlp"})
    cid = accepted.json()["correlation_id"]
    wait_until(lambda: _get(stack.open, accepted.json()["status_url"]).json()["status"] == "resolved", 30, "resolved")
    stack.spellchecked(batch, 1)
    wait_until(lambda: _get(stack.open, f"/v1/batches/{batch}/status").json()["steps"][0]["succeeded"] == 1, 30, "1")
    status = _get(stack.open, f"/v1/batches/{batch}/status").json()

    with EventStream(url, headers={"Last-Event-ID": str(last_seen)}) as resumed:
        resumed.wait_for(lambda events: len(events) >= 2, what="the missed request and progress")
        assert [e.event for e in resumed.events] == ["request", "progress"]
        assert resumed.events[0].data["correlation_id"] == cid and resumed.events[0].data["status"] == "resolved"
        assert resumed.events[1].data["steps"] == status["steps"]
        assert resumed.events[-1].id == str(status["version"])

    with EventStream(f"{url}?last_event_id={status['version']}") as current:  # nothing missed: nothing sent
        wait_until(lambda: "heartbeat" in current.comments, 10, "a heartbeat")
        assert current.events == []

    with EventStream(url, headers={"Last-Event-ID": str(status["version"] + 1000)}) as ahead:  # unknown: snapshot
        ahead.wait_for(lambda events: len(events) >= 1, what="snapshot")
        assert ahead.events[0].event == "snapshot" and ahead.events[0].data == status


def test_stream_errors_before_it_starts_are_problem_json(stack: Stack) -> None:
    ghost = _get(stack.open, f"/v1/batches/ghost-{uuid.uuid4().hex[:6]}/events")
    assert ghost.status_code == 404 and ghost.headers["content-type"] == "application/problem+json"
    assert ghost.json()["code"] == "BATCH_NOT_FOUND"
    bad = _get(stack.open, "/v1/batches/b1/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "Last-Event-ID"


# ---- authentication: bearer, tickets, ownership; nothing secret in the logs ---------------------------------------


def test_jwt_streams_by_bearer_and_by_ticket_and_never_log_either(stack: Stack) -> None:
    batch = stack.register(owner=OWNER)
    jwt_owner, jwt_other = token(OWNER), token(OTHER)
    url = f"{stack.jwt.url}/v1/batches/{batch}/events"

    assert _get(stack.jwt, f"/v1/batches/{batch}/events").status_code == 401
    assert _get(stack.jwt, f"/v1/batches/{batch}/events", bearer(jwt_other)).json()["code"] == "FORBIDDEN"
    with EventStream(url, headers=bearer(jwt_owner)) as by_header:
        by_header.wait_for(lambda events: len(events) >= 1, what="snapshot by bearer")
        assert by_header.events[0].event == "snapshot"

    assert _post(stack.jwt, f"/v1/batches/{batch}/events/ticket").status_code == 401
    assert _post(stack.jwt, f"/v1/batches/{batch}/events/ticket", headers=bearer(jwt_other)).status_code == 403
    issued = _post(stack.jwt, f"/v1/batches/{batch}/events/ticket", headers=bearer(jwt_owner))
    assert issued.status_code == 200, issued.text
    ticket = issued.json()["ticket"]
    assert issued.json()["expires_in"] == 60
    assert issued.json()["events_url"] == f"/v1/batches/{batch}/events?ticket={ticket}"
    with EventStream(f"{stack.jwt.url}{issued.json()['events_url']}") as by_ticket:  # no header, as EventSource
        by_ticket.wait_for(lambda events: len(events) >= 1, what="snapshot by ticket")
        assert by_ticket.events[0].data["batch_id"] == batch

    other_batch = stack.register(owner=OWNER)
    wrong_batch = _get(stack.jwt, f"/v1/batches/{other_batch}/events?ticket={ticket}")
    assert wrong_batch.status_code == 401 and "another batch" in wrong_batch.json()["detail"]
    assert _get(stack.jwt, f"/v1/batches/{batch}/events?ticket={jwt_owner}").status_code == 401  # not a ticket
    assert _get(stack.jwt, f"/v1/batches/{batch}/events?ticket={ticket[:-4]}AAAA").status_code == 401
    assert _get(stack.jwt, f"/v1/batches/{batch}/status", bearer(ticket)).status_code == 401  # not a bearer token

    time.sleep(0.3)  # the audit log is flushed every 0.2 s
    log = stack.jwt.logs()
    for secret in (jwt_owner, jwt_other, ticket, ticket.split(".")[2]):
        assert secret not in log
    audits = [r for r in stack.jwt.log_records() if r.get("logger") == "gateway.audit" and r.get("batch_id") == batch]
    assert {r["action"] for r in audits} >= {"stream_batch_events", "create_stream_ticket"}
    assert all(
        r["route"] in {"/v1/batches/{batch_id}/events", "/v1/batches/{batch_id}/events/ticket"}
        for r in audits
        if r["action"] != "get_batch_status"
    )


# ---- caps, lifetime, shutdown ---------------------------------------------------------------------------------------


def _stream_gateway(broker: EmbeddedBroker, stack: Stack, tmp_path: Path, **env: str) -> GatewayProcess:
    gateway = GatewayProcess(broker.url, tmp_path, free_port(), stack.worker.web_url, **INTERNAL, **FAST, **env)
    return gateway.start_and_wait()


def test_open_streams_are_capped_per_client_and_per_gateway(
    stack: Stack, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    batch = stack.register(owner="dev-user")
    with _stream_gateway(broker, stack, tmp_path, CONDUCTOR_GATEWAY_STREAM_MAX_PER_CLIENT="2") as gateway:
        url = f"{gateway.url}/v1/batches/{batch}/events"
        with EventStream(url) as one, EventStream(url) as two:
            one.wait_for(lambda e: len(e) >= 1), two.wait_for(lambda e: len(e) >= 1)
            refused = _get(gateway, f"/v1/batches/{batch}/events")
            assert refused.status_code == 429 and refused.json()["code"] == "TOO_MANY_STREAMS"
            assert refused.headers["content-type"] == "application/problem+json" and "Retry-After" in refused.headers
        # Both closed: their places are given back (disconnects are seen at the next heartbeat at the latest).
        wait_until(lambda: "gateway_open_streams 0.0" in _get(gateway, "/metrics").text, 10, "streams released")
        with EventStream(url) as again:
            again.wait_for(lambda e: len(e) >= 1, what="a stream after the others closed")

    with _stream_gateway(broker, stack, tmp_path, CONDUCTOR_GATEWAY_STREAM_MAX="1") as gateway:
        url = f"{gateway.url}/v1/batches/{batch}/events"
        with EventStream(url) as only:
            only.wait_for(lambda e: len(e) >= 1)
            full = _get(gateway, f"/v1/batches/{batch}/events")
            assert full.status_code == 503 and full.json()["code"] == "STREAMS_EXHAUSTED"
            assert full.headers["Retry-After"] == "3"


def test_a_stream_ends_after_its_lifetime(stack: Stack, broker: EmbeddedBroker, tmp_path: Path) -> None:
    batch = stack.register()
    with _stream_gateway(broker, stack, tmp_path, CONDUCTOR_GATEWAY_STREAM_MAX_SECONDS="1.5") as gateway:
        started = time.monotonic()
        with EventStream(f"{gateway.url}/v1/batches/{batch}/events") as stream:
            assert stream.ended.wait(10), "the stream did not end"
            lifetime = time.monotonic() - started
            assert 1.2 < lifetime < 8 and stream.events[0].event == "snapshot"


def test_shutdown_closes_open_streams_at_once(stack: Stack, broker: EmbeddedBroker, tmp_path: Path) -> None:
    batch = stack.register()
    gateway = _stream_gateway(broker, stack, tmp_path)
    try:
        streams = [EventStream(f"{gateway.url}/v1/batches/{batch}/events").__enter__() for _ in range(3)]
        for stream in streams:
            stream.wait_for(lambda e: len(e) >= 1)
        started = time.monotonic()
        gateway.stop()
        took = time.monotonic() - started
        assert all(stream.ended.wait(5) for stream in streams)
        assert took < 5, f"shutdown took {took:.1f} s"
        assert "timeout graceful shutdown exceeded" not in gateway.logs()
        assert "Application shutdown complete" in gateway.logs()
    finally:
        gateway.stop()
