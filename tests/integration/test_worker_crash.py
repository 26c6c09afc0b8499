"""Crash without loss: kill -9 a worker mid-stream and restart it; two workers survive losing one, under load too."""

import asyncio
import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from conductor.broker import free_port
from contracts.state import BatchState
from contracts.topics import BATCH_STATE_UPDATES, INPUT_TOPICS, Topic
from streams.decoding import decode_completion
from tables.projection import apply_update, status_view
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import collect, committed_offsets, produce, read_to_end, wait_committed_to_end
from tests.support.processes import WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCHES = 200
COMMANDS = 4000
LOG_INFO = {"CONDUCTOR_WORKER_LOG_LEVEL": "info"}  # rebalances and recovery in the log a failure shows
STEPS = ["spellcheck", "nlp", "cj_assessment", "ai_feedback"]
GROUP = "batch_conductor"  # the worker's app id: its consumer group
ANSWERS = [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED]


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


# Not part of the projected state: the requests answered, and the row's version (it counts writes, which
# redelivered events and answered commands add to).
NOT_PROJECTED = {"recent_requests", "version"}


def expected_views(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The state a crash-free run ends with: the pure projection of every event."""
    states: dict[str, BatchState | None] = defaultdict(lambda: None)
    for event in events:
        update = decode_completion(event["event_type"], m.as_bytes(event))
        states[update.batch_id] = apply_update(states[update.batch_id], update)
    return {
        batch: status_view(batch, state, None, STEPS).model_dump(mode="json", exclude=NOT_PROJECTED)
        for batch, state in states.items()
    }


def actual_views(worker: WorkerProcess, batch_ids: list[str]) -> dict[str, Any]:
    out = {}
    with httpx.Client(base_url=worker.web_url, headers=worker.internal_headers, timeout=10) as client:
        for batch in batch_ids:
            response = client.get(f"/batches/{batch}")
            body = response.json() if response.status_code == 200 else {"status": response.status_code}
            out[batch] = {k: v for k, v in body.items() if k not in NOT_PROJECTED}
    return out


def assert_views_become(worker: WorkerProcess, batch_ids: list[str], expected: dict[str, Any], timeout: float) -> None:
    """Wait until the worker's views equal `expected`; on timeout name the batches that still differ."""
    last: dict[str, Any] = {}

    def equal() -> bool:
        last.update(actual_views(worker, batch_ids))
        return last == expected

    try:
        wait_until(equal, timeout, "final state equals crash-free state", interval=1.0)
    except AssertionError as exc:
        differing = [b for b in batch_ids if last.get(b) != expected.get(b)]
        first = differing[0]
        raise AssertionError(
            f"{exc}: {len(differing)} batch(es) differ, e.g. {first}\nexpected {expected.get(first)}\n"
            f"actual   {last.get(first)}\n--- worker log ---\n{worker.log_tail(40)}"
        ) from None


def interleave(events: list[dict[str, Any]], commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spread the events evenly among the commands, each kind keeping its order."""
    every = max(1, len(commands) // max(1, len(events)))
    out, pending = [], list(events)
    for i, command in enumerate(commands):
        out.append(command)
        if pending and i % every == every - 1:
            out.append(pending.pop(0))
    return out + pending


def killed_after(sent: list[dict[str, Any]], commands: list[dict[str, Any]]) -> int:
    """Return the index of the last command sent before the kill."""
    last = next(x for x in reversed(sent) if x["event_type"] == commands[0]["event_type"])
    return commands.index(last)


def _ranges(numbers: list[int]) -> str:
    """Render sorted integers compactly: 1-3,7."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


async def test_kill_9_mid_stream_loses_nothing_and_answers_each_command_once(tmp_path: Path) -> None:
    prefix = f"crash-{uuid.uuid4().hex[:6]}"
    events, commands = workload(prefix)
    with new_broker(tmp_path) as broker:
        worker = WorkerProcess(broker.url, tmp_path, free_port(), **LOG_INFO).start_and_wait()
        try:
            await produce(broker.bootstrap, [(e["event_type"], _key(e), m.as_bytes(e)) for e in events[:BATCHES]])
            stream = interleave(events[BATCHES:], commands)
            half = len(stream) * 2 // 5
            await produce(broker.bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in stream[:half]])
            worker.kill()  # kill -9 while the first 40 % are still being processed
            sender = asyncio.create_task(
                produce(broker.bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in stream[half:]])
            )
            worker = WorkerProcess(broker.url, tmp_path, worker.web_port, **LOG_INFO).start_and_wait(timeout=120)
            await sender

            sent = {c["correlation_id"]: i for i, c in enumerate(commands)}
            answered: set[str] = set()
            seen = [0]  # records of `kept` already read

            def all_answered(kept: list[Any]) -> bool:
                answered.update(json.loads(r.value)["data"]["client_correlation_id"] for r in kept[seen[0] :])
                seen[0] = len(kept)
                return answered >= sent.keys()

            try:
                await collect(broker.bootstrap, ANSWERS, all_answered, 180)
            except AssertionError as exc:
                missing = sorted(i for corr, i in sent.items() if corr not in answered)
                raise AssertionError(
                    f"{exc}\n{len(missing)} command(s) unanswered, indices {_ranges(missing)} "
                    f"(killed after command {killed_after(stream[:half], commands)})\n--- worker log ---\n"
                    f"{worker.log_tail(80)}"
                ) from None
            batch_ids = [f"{prefix}-{i}" for i in range(BATCHES)]
            expected = expected_views(events)
            assert_views_become(worker, batch_ids, expected, 60)
            answers = await every_answer(broker.bootstrap)
        finally:
            worker.stop()

    by_request, copies = answers_by_request(answers)
    assert set(by_request) == sent.keys()  # every accepted command has an outcome, and nothing else has one
    different = {k: v for k, v in by_request.items() if len(v) != 1}
    assert not different, f"{len(different)} command(s) got two different answers"
    duplicates = sum(n - 1 for n in copies.values())
    print(
        f"\ncrash run: {len(events) + len(commands)} messages, {len(sent)} outcomes, "
        f"{duplicates} redelivered duplicates"
    )


def start_two_workers(broker_url: str, tmp_path: Path, **env: str) -> tuple[WorkerProcess, WorkerProcess]:
    """Start two workers on the broker and wait until both own partitions (stopping both if they do not)."""
    first = WorkerProcess(broker_url, tmp_path, free_port(), **env).start_and_wait()
    second = WorkerProcess(broker_url, tmp_path, free_port(), **env).start()
    try:
        second.wait_ready(f"{second.web_url}/healthz", 90)
        wait_until(
            lambda: all(w.get("/assignment/", timeout=5).json().get("actives") for w in (first, second)),
            60,
            "both workers own partitions",
        )
    except BaseException:
        second.stop()
        first.stop()
        raise
    return first, second


async def test_survivor_takes_over_and_answers_for_all_batches(tmp_path: Path) -> None:
    prefix = f"takeover-{uuid.uuid4().hex[:6]}"
    batch_ids = [f"{prefix}-{i}" for i in range(16)]
    events = [m.registered(b, [f"{b}-e"]) for b in batch_ids] + [m.spellcheck(b, f"{b}-e") for b in batch_ids]
    with new_broker(tmp_path) as broker:
        first, second = start_two_workers(broker.url, tmp_path)
        try:
            await produce(broker.bootstrap, [(e["event_type"], _key(e), m.as_bytes(e)) for e in events])
            expected = expected_views(events)
            wait_until(lambda: actual_views(first, batch_ids) == expected, 60, "state projected across both workers")
            second.kill()
            wait_until(lambda: actual_views(first, batch_ids) == expected, 90, "survivor answers for every batch")
        finally:
            second.stop()
            first.stop()


async def test_every_input_partition_has_a_committed_offset_once_a_worker_is_ready(tmp_path: Path) -> None:
    # A partition without one is left to the reset policy when its owner dies; Faust 0.15 then lost what it had
    # fetched during the rebalance (streams/faust_fixes.py). Nothing has been produced here: offsets are 0.
    with new_broker(tmp_path) as broker:
        with WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait():
            topics = [*INPUT_TOPICS, BATCH_STATE_UPDATES]
            committed = await committed_offsets(broker.bootstrap, "batch_conductor", topics, 4)
    assert committed == {name: 0 for name in committed}


async def test_losing_one_of_two_workers_mid_stream_loses_no_command(tmp_path: Path) -> None:
    prefix = f"survive-{uuid.uuid4().hex[:6]}"
    batches = [f"{prefix}-{i}" for i in range(100)]
    commands = [m.command(batches[i % 100], "nlp") for i in range(2000)]
    with new_broker(tmp_path) as broker:
        first, second = start_two_workers(broker.url, tmp_path, **LOG_INFO)
        try:
            await send_all(broker.bootstrap, [m.registered(b, [f"{b}-e"]) for b in batches])
            sender = asyncio.create_task(send_all(broker.bootstrap, commands))
            await wait_for_answers(broker.bootstrap, 100)  # both workers are answering
            second.kill()  # mid-stream, most likely before its first offset commit
            await sender
            sent = {c["correlation_id"] for c in commands}
            answered: set[str] = set()

            def all_answered(kept: list[Any]) -> bool:
                answered.update(json.loads(r.value)["data"]["client_correlation_id"] for r in kept)
                kept.clear()
                return answered >= sent

            try:
                await collect(broker.bootstrap, ANSWERS, all_answered, 120)
            except AssertionError as exc:
                missing = sorted(i for i, c in enumerate(commands) if c["correlation_id"] not in answered)
                raise AssertionError(
                    f"{exc}\n{len(missing)} command(s) unanswered, indices {_ranges(missing)}\n--- survivor log ---\n"
                    f"{first.log_tail(60)}"
                ) from None
            answers = await every_answer(broker.bootstrap)
        finally:
            second.stop()
            first.stop()
    by_request, _ = answers_by_request(answers)
    assert set(by_request) == sent
    different = {k: v for k, v in by_request.items() if len(v) != 1}
    assert not different, f"{len(different)} command(s) got two different answers"


async def every_answer(bootstrap: str) -> list[Any]:
    """Return every answer on the answer topics once the worker(s) committed the command topic to its end.

    A command's offset is committed only after its answer is acknowledged, so nothing more is coming for the
    commands sent; the topics are read to their end offsets, not just until each command was seen once.
    """
    await wait_committed_to_end(bootstrap, GROUP, [Topic.PIPELINE_COMMAND], 90)
    return await read_to_end(bootstrap, ANSWERS)


def answers_by_request(answers: list[Any]) -> tuple[dict[str, set[bytes]], dict[str, int]]:
    """Return each command's distinct answers (exact bytes) and how many copies of answers it got."""
    by_request: dict[str, set[bytes]] = defaultdict(set)
    copies: dict[str, int] = defaultdict(int)
    for record in answers:
        correlation_id = json.loads(record.value)["data"]["client_correlation_id"]
        by_request[correlation_id].add(record.value)
        copies[correlation_id] += 1
    return by_request, copies


async def send_all(bootstrap: str, messages: list[dict[str, Any]]) -> None:
    """Produce platform messages to their topics, keyed by batch id, each acknowledged before the next."""
    await produce(bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in messages])


async def wait_for_answers(bootstrap: str, count: int) -> None:
    """Wait until `count` answers have been published."""
    await collect(
        bootstrap,
        [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED],
        lambda kept: len(kept) >= count,
        60,
    )
