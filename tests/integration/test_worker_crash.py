"""Crash without loss: kill -9 a worker mid-stream and restart it; two workers survive losing one."""

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from conductor.broker import EmbeddedBroker, free_port
from contracts.state import BatchState
from contracts.topics import Topic
from streams.decoding import decode_completion
from tables.projection import apply_update, status_view
from tests.support import messages as m
from tests.support.kafka import collect, produce
from tests.support.processes import WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCHES = 200
COMMANDS = 4000
STEPS = ["spellcheck", "nlp", "cj_assessment", "ai_feedback"]


def _key(msg: dict[str, Any]) -> bytes:
    data = msg["data"]
    return str(data.get("batch_id") or data.get("entity_id") or data.get("parent_id")).encode()


def workload(prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (completion events, commands): 200 batches x 5 events, 4,000 commands over them."""
    events: list[dict[str, Any]] = []
    for i in range(BATCHES):
        batch = f"{prefix}-{i}"
        essays = [f"{batch}-e{j}" for j in range(3)]
        events.append(m.registered(batch, essays))
        events.extend(m.spellcheck(batch, e, ok=(i + j) % 5 != 0, at=1 + j) for j, e in enumerate(essays))
        events.append(m.phase_outcome(batch, "nlp", essays[: 1 + i % 3]))
    pipelines = ["ai_feedback", "nlp", "cj_assessment", "spellcheck", "comprehensive"]
    commands = [m.command(f"{prefix}-{i % BATCHES}", pipelines[i % 5]) for i in range(COMMANDS)]
    return events, commands


def expected_views(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The state a crash-free run ends with: the pure projection of every event."""
    states: dict[str, BatchState | None] = defaultdict(lambda: None)
    for event in events:
        update = decode_completion(event["event_type"], m.as_bytes(event))
        states[update.batch_id] = apply_update(states[update.batch_id], update)
    return {
        batch: status_view(batch, state, None, STEPS).model_dump(mode="json", exclude={"recent_requests"})
        for batch, state in states.items()
    }


def actual_views(worker: WorkerProcess, batch_ids: list[str]) -> dict[str, Any]:
    out = {}
    with httpx.Client(base_url=worker.web_url, timeout=10) as client:
        for batch in batch_ids:
            response = client.get(f"/batches/{batch}")
            body = response.json() if response.status_code == 200 else {"status": response.status_code}
            body.pop("recent_requests", None)
            out[batch] = body
    return out


async def test_kill_9_mid_stream_loses_nothing_and_answers_each_command_once(tmp_path: Path) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:6]}"
    events, commands = workload(prefix)
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        worker = WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait()
        try:
            await produce(broker.bootstrap, [(e["event_type"], _key(e), m.as_bytes(e)) for e in events[:BATCHES]])
            stream = [*events[BATCHES:], *commands]
            stream = [x for pair in zip(stream[::2], stream[1::2], strict=False) for x in pair] + stream[
                len(stream) // 2 * 2 :
            ]
            half = len(stream) * 2 // 5
            await produce(broker.bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in stream[:half]])
            worker.kill()  # kill -9 while the first 40 % are still being processed
            sender = asyncio.create_task(
                produce(broker.bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in stream[half:]])
            )
            worker = WorkerProcess(broker.url, tmp_path, worker.web_port).start_and_wait(timeout=120)
            await sender

            sent = {c["correlation_id"] for c in commands}
            answers = await collect(
                broker.bootstrap,
                [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED],
                lambda kept: {json.loads(r.value)["data"]["client_correlation_id"] for r in kept} >= sent,
                timeout=180,
            )
            batch_ids = [f"{prefix}-{i}" for i in range(BATCHES)]
            expected = expected_views(events)
            wait_until(lambda: actual_views(worker, batch_ids) == expected, 60, "final state equals crash-free state")
        finally:
            worker.stop()

    by_request: dict[str, set[bytes]] = defaultdict(set)
    copies: dict[str, int] = defaultdict(int)
    for record in answers:
        correlation_id = json.loads(record.value)["data"]["client_correlation_id"]
        by_request[correlation_id].add(record.value)
        copies[correlation_id] += 1
    assert set(by_request) == sent  # every accepted command has an outcome
    different = {k: v for k, v in by_request.items() if len(v) != 1}
    assert not different, f"{len(different)} command(s) got two different answers"
    duplicates = sum(n - 1 for n in copies.values())
    print(
        f"\ncrash run: {len(events) + len(commands)} messages, {len(sent)} outcomes, "
        f"{duplicates} redelivered duplicates"
    )


async def test_survivor_takes_over_and_answers_for_all_batches(tmp_path: Path) -> None:
    prefix = f"takeover-{uuid.uuid4().hex[:6]}"
    batch_ids = [f"{prefix}-{i}" for i in range(16)]
    events = [m.registered(b, [f"{b}-e"]) for b in batch_ids] + [m.spellcheck(b, f"{b}-e") for b in batch_ids]
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        first = WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait()
        second = WorkerProcess(broker.url, tmp_path, free_port()).start()
        try:
            second.wait_ready(f"{second.web_url}/healthz", 90)
            wait_until(
                lambda: all(
                    httpx.get(f"{w.web_url}/assignment/", timeout=5).json().get("actives") for w in (first, second)
                ),
                60,
                "both workers own partitions",
            )
            await produce(broker.bootstrap, [(e["event_type"], _key(e), m.as_bytes(e)) for e in events])
            expected = expected_views(events)
            wait_until(lambda: actual_views(first, batch_ids) == expected, 60, "state projected across both workers")
            second.kill()
            wait_until(lambda: actual_views(first, batch_ids) == expected, 90, "survivor answers for every batch")
        finally:
            second.stop()
            first.stop()
