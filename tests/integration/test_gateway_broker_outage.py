"""Issue 7, scenario 6: the broker freezes (SIGSTOP) while clients keep posting; nothing accepted is lost.

A real gateway process publishes to a broker of this test's own (freezing the session's would stall other tests).
Four clients post continuously, each request with its own `X-Correlation-ID`, before, during and after an outage.
During it every POST must still answer within 2 s, either 202 or a 503 problem document with `Retry-After`
(never a hang, never a 500); after the thaw the same gateway process (no restart) accepts again by itself; and
every command that got a 202 is on the command topic exactly once.

"The gateway starts while the broker is down and connects by itself" is covered in test_gateway_http.py
(test_gateway_started_before_the_broker_connects_by_itself).
"""

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from contracts.topics import Topic
from tests.support.brokers import new_broker
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import collect, read_to_end
from tests.support.stub_worker import StubWorker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 4
PACE_SECONDS = 0.02  # between one client's requests
BEFORE_SECONDS, OUTAGE_SECONDS, AFTER_SECONDS = 3.0, 8.0, 4.0
ANSWER_WITHIN_SECONDS = 2.0
RECOVERY_WITHIN_SECONDS = 15.0
PUBLISH_TIMEOUT_MS = 1500  # the broker acknowledgement deadline; the rest of the 2 s budget is HTTP and routing


@dataclass(frozen=True)
class Answer:
    """One POST: its correlation id, when it was sent (relative to the start), how long it took, what came back."""

    correlation_id: str
    sent: float
    latency: float
    status: int
    content_type: str
    code: str | None
    retry_after: str | None


async def _client(http: httpx.AsyncClient, started: float, stop: asyncio.Event, answers: list[Answer]) -> None:
    while not stop.is_set():
        cid = str(uuid.uuid4())
        sent = time.monotonic()
        response = await http.post(
            "/v1/batches/outage-batch/pipelines",
            json={"requested_pipeline": "nlp"},
            headers={"X-Correlation-ID": cid},
        )
        latency = time.monotonic() - sent
        body: dict[str, Any] = response.json() if "json" in response.headers.get("content-type", "") else {}
        answers.append(
            Answer(
                cid,
                sent - started,
                latency,
                response.status_code,
                response.headers.get("content-type", ""),
                body.get("code"),
                response.headers.get("retry-after"),
            )
        )
        await asyncio.sleep(PACE_SECONDS)


async def _traffic_through_an_outage(gateway: GatewayProcess, broker: Broker) -> tuple[list[Answer], float]:
    """Post from CLIENTS clients through BEFORE / OUTAGE / AFTER; return every answer and the thaw's time."""
    answers: list[Answer] = []
    stop = asyncio.Event()
    # The read timeout is far above the budget: a hang shows up as a measured latency, not as a client error.
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=30.0) as http:
        started = time.monotonic()
        clients = [asyncio.create_task(_client(http, started, stop, answers)) for _ in range(CLIENTS)]
        await asyncio.sleep(BEFORE_SECONDS)
        broker.freeze()
        try:
            await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            broker.thaw()
        thawed = time.monotonic() - started
        deadline = time.monotonic() + RECOVERY_WITHIN_SECONDS
        while time.monotonic() < deadline and not any(a.status == 202 and a.sent > thawed for a in answers):
            await asyncio.sleep(0.1)
        await asyncio.sleep(AFTER_SECONDS)
        stop.set()
        await asyncio.gather(*clients)
    return answers, thawed


def test_posts_answer_in_bounded_time_through_an_outage_and_no_accepted_command_is_lost(tmp_path: Path) -> None:
    with new_broker(tmp_path) as broker, StubWorker() as stub:
        stub.register("outage-batch", user_id="dev-user")
        gateway = GatewayProcess(
            broker.url,
            tmp_path,
            free_port(),
            stub.url,
            CONDUCTOR_GATEWAY_RATE_LIMIT_ENABLED="false",
            CONDUCTOR_GATEWAY_PUBLISH_TIMEOUT_MS=str(PUBLISH_TIMEOUT_MS),
            CONDUCTOR_GATEWAY_RETRY_AFTER_SECONDS="2",
        )
        with gateway.start_and_wait():
            assert gateway.process is not None
            pid = gateway.process.pid
            answers, thawed = asyncio.run(_traffic_through_an_outage(gateway, broker))
            assert gateway.process is not None and gateway.process.pid == pid and gateway.process.poll() is None
            accepted = [a.correlation_id for a in answers if a.status == 202]
            found = _commands_on_the_topic(broker, set(accepted))
            refused = {a.correlation_id for a in answers if a.status == 503}
            written_anyway = len(refused & set(_all_correlation_ids(broker)))

    outage = [a for a in answers if BEFORE_SECONDS <= a.sent < thawed]
    after = [a for a in answers if a.sent >= thawed]
    statuses = Counter(a.status for a in answers)
    slowest = max(answers, key=lambda a: a.latency)
    recovered = min((a.sent for a in after if a.status == 202), default=None)
    print(
        f"\nbroker outage: {len(answers)} POSTs from {CLIENTS} clients, statuses {dict(statuses)}; "
        f"max latency {slowest.latency:.3f}s ({slowest.status}), max 503 latency "
        f"{max((a.latency for a in answers if a.status == 503), default=0):.3f}s; "
        f"{sum(a.status == 503 for a in outage)} 503s during the {OUTAGE_SECONDS:.0f}s outage; "
        f"202 again {0 if recovered is None else recovered - thawed:.2f}s after the thaw; "
        f"{len(accepted)} accepted, {len(found)} found on the topic, {len(set(found))} distinct; "
        f"{written_anyway} of the 503'd commands were written anyway once the broker resumed"
    )

    assert set(statuses) <= {202, 503}, statuses
    assert slowest.latency < ANSWER_WITHIN_SECONDS, slowest
    for answer in answers:
        if answer.status == 503:
            assert answer.content_type == "application/problem+json" and answer.code == "BROKER_UNAVAILABLE", answer
            assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer
    assert any(a.status == 202 for a in answers if a.sent < BEFORE_SECONDS)
    assert sum(a.status == 503 for a in outage) >= CLIENTS, "the outage did not reach the clients"
    assert recovered is not None and recovered - thawed < RECOVERY_WITHIN_SECONDS, "no 202 after the thaw"
    assert sum(a.status == 202 for a in after) > 10
    # Nothing accepted is lost, nothing accepted is doubled.
    assert sorted(found) == sorted(accepted)


def _commands_on_the_topic(broker: Broker, correlation_ids: set[str]) -> list[str]:
    """Return the correlation id of every command record on the topic that is one of `correlation_ids`."""

    def mine(record: Any) -> bool:
        return json.loads(record.value)["correlation_id"] in correlation_ids

    def complete(kept: list[Any]) -> bool:
        return {json.loads(r.value)["correlation_id"] for r in kept} >= correlation_ids

    asyncio.run(collect(broker.bootstrap, [Topic.PIPELINE_COMMAND], complete, timeout=30, keep=mine))
    # Every one is there; now read the whole topic, so that a duplicate anywhere is seen too.
    return [cid for cid in _all_correlation_ids(broker) if cid in correlation_ids]


def _all_correlation_ids(broker: Broker) -> list[str]:
    """Return the correlation id of every record on the command topic, read to its end offsets."""
    records = asyncio.run(read_to_end(broker.bootstrap, [Topic.PIPELINE_COMMAND]))
    return [json.loads(r.value or b"{}")["correlation_id"] for r in records]
