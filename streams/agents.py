"""The worker's agents: decode -> pure call -> table write -> send, a batch of events at a time. Bad input goes to
the DLQ.

Faust's per-event machinery, not our code, bounds a worker (platform notes: a bare counting agent does ~5k
events/s), so the agents take events in batches (`stream.take_events`) and do their own work once per batch id:
one table read and write per batch id and batch, one re-keyed record per batch id. Offsets are committed only
after a batch's body has run (take_events acks its events then): at-least-once is kept, and the projection is
idempotent and order-insensitive, so a redelivered batch changes nothing. A body that raises is retried, then its
events are tried one at a time and those that still fail go to the DLQ (`_settle`): take_events acks a batch even
when its body raised, so an event is acked only once it was processed or dead-lettered.
"""

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from faust.exceptions import FaustError
from faust.types import EventT
from pydantic import TypeAdapter

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.envelope import EventEnvelope
from contracts.state import BatchState, BatchStateUpdate, RequestOutcome
from contracts.topics import BATCH_STATE_UPDATES, COMPLETION_TOPICS, DLQ_SOURCES, OUTPUT_TOPICS, Topic, dlq_topic
from streams import metrics
from streams.app import app, catalog, settings
from streams.decoding import PoisonMessage, check_size, decode_command, decode_completion
from streams.dlq import build_dlq_record
from streams.faust_fixes import withhold_acks
from streams.resolution import output_events, resolve_request
from tables.batch_state import (
    batch_state,
    event_context,
    pipeline_requests,
    read_requests,
    read_state,
    requests_version,
    write_requests,
    write_state,
)
from tables.projection import apply_updates, next_version, record_request

log = logging.getLogger(__name__)

# Batches: at most this many events, waiting at most this long for them. A batch writes each batch id's table
# row once and sends one re-keyed record per batch id; the wait adds up to that long to an event's latency at
# low load, so the command path (end-to-end latency) waits least.
PROJECTION_BATCH = (2000, 0.05)
RESOLUTION_BATCH = (500, 0.002)

_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

completion_topic = app.topic(*COMPLETION_TOPICS, **_RAW)
command_topic = app.topic(Topic.PIPELINE_COMMAND, **_RAW)
updates_topic = app.topic(BATCH_STATE_UPDATES, **_RAW)
output_topics = {name: app.topic(name, **_RAW) for name in OUTPUT_TOPICS}
dlq_topics = {name: app.topic(dlq_topic(name), **_RAW) for name in DLQ_SOURCES}

_NO_EXTRAS = (None, None, None)  # partition (by key), timestamp, headers

# A record of the updates topic holds a JSON array of one batch's updates (a single update object from workers
# before batching is still read).
_UPDATES = TypeAdapter(list[BatchStateUpdate])


async def dead_letter(event: EventT[Any], error: PoisonMessage) -> Awaitable[Any]:
    """Send an undecodable input message to its topic's DLQ with the reason; return the pending send."""
    message = event.message
    record = build_dlq_record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        value=message.value,
        reason=error.reason,
        parsed=error.parsed,
        detail=error.detail,
        now=datetime.now(UTC),
    )
    pending = await dlq_topics[message.topic].send(key=message.key, value=record, force=True)
    metrics.DLQ_RECORDS.labels(message.topic).inc()
    metrics.EVENTS.labels(message.topic, "dead_lettered").inc()
    log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, error.reason)
    return pending


async def _delivered(sent: Sequence[Awaitable[Any]]) -> None:
    """Wait until the broker has acknowledged what a batch sent, before the batch's offsets can be committed.

    Faust commits a forced send's input offset without waiting for it: a crash in between would lose the
    record for good, breaking at-least-once. Waiting once per batch costs one round trip per batch.
    """
    if sent:
        await asyncio.gather(*sent)


# A batch whose body raised is run again this often (waiting RETRY_SECONDS x attempt in between), then its events one
# at a time; an event that fails alone goes to the DLQ with reason PROCESSING_FAILED. A failure of the infrastructure
# (the broker, the producer, Faust's topic metadata) says nothing about the events: it is retried until it passes (the
# wait capped at MAX_RETRY_SECONDS), never dead-lettered.
BATCH_ATTEMPTS = 3
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0
PROCESSING_FAILED = "processing failed"
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    KafkaError,  # aiokafka: connection, timeouts, not enough replicas, no leader, ...
    FaustError,  # Faust: PartitionsMismatch while a new changelog topic's metadata is not known yet, producer errors
    ConnectionError,
    TimeoutError,
)

# A body processes a batch and returns what it sent (pending sends), and optionally a step to run once those are
# delivered (which returns its own pending sends).
Finish = Callable[[], Awaitable[list[Awaitable[Any]]]]
Pending = tuple[list[Awaitable[Any]], Finish | None]
Body = Callable[[Sequence[EventT[Any]]], Awaitable[Pending]]


async def _run(events: Sequence[EventT[Any]], body: Body) -> None:
    """Run `body` on a batch and wait until everything it sent is delivered."""
    sent, then = await body(events)
    await _delivered(sent)
    if then is not None:
        await _delivered(await then())


class _Rebalancing(Exception):
    """The group is rebalancing: the events' partitions may be leaving this worker."""


async def _attempts(events: Sequence[EventT[Any]], body: Body, attempts: int) -> Exception | None:
    """Run `body` until it passes (None) or has failed `attempts` times with a non-infrastructure error (returned)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await _run(events, body)
            return None
        except Exception as exc:  # an unexpected failure: loud, retried, never acked as processed
            infrastructure = isinstance(exc, INFRASTRUCTURE_ERRORS)
            log.exception(
                "batch of %d event(s) failed (attempt %d%s)",
                len(events),
                attempt,
                ", infrastructure: retried until it passes" if infrastructure else f" of {attempts}",
            )
            _events(events[0].message.topic, "batch_failed").inc(len(events))
            if app.rebalancing:
                raise _Rebalancing from exc
            if not infrastructure and attempt >= attempts:
                return exc
            await asyncio.sleep(min(RETRY_SECONDS * attempt, MAX_RETRY_SECONDS))


async def _settle(events: Sequence[EventT[Any]], body: Body) -> None:
    """Run `body` on a batch so that every event is processed or dead-lettered before take_events acks it."""
    try:
        last = await _attempts(events, body, BATCH_ATTEMPTS)
        if last is None:
            return
        failed: list[tuple[EventT[Any], Exception]] = []
        if len(events) == 1:
            failed = [(events[0], last)]
        else:
            for event in events:
                alone = await _attempts([event], body, 1)
                if alone is not None:
                    failed.append((event, alone))
    except _Rebalancing:
        # Keep the offsets uncommitted. The seek that ends the rebalance fetches the events again, here or on their
        # new owner (processing them twice gives the same state and byte-identical answers).
        withhold_acks(events)
        return
    try:
        await _delivered(
            [
                await dead_letter(event, PoisonMessage(f"{PROCESSING_FAILED}: {type(exc).__name__}: {str(exc)[:500]}"))
                for event, exc in failed
            ]
        )
    except Exception:
        # Not even the DLQ took them: keep their offsets uncommitted (they come again after a restart), and crash.
        withhold_acks(event for event, _ in failed)
        raise


def _fold(event: EventT[Any], updates: Sequence[BatchStateUpdate]) -> None:
    """Fold one batch's updates into batch_state with one read and at most one write, on `event`'s partition."""
    with event_context(event):
        state = read_state(updates[0].batch_id)
        new_state: BatchState = apply_updates(state, updates)
        if new_state is not state:
            new_state.version = next_version(state, requests_version(new_state.batch_id))
            write_state(new_state)
    _state_updates("changed" if new_state is not state else "unchanged").inc(len(updates))


@app.agent(completion_topic)
async def project_completion_events(stream: Any) -> None:
    """Normalise completion events of both generations and re-key them by batch id, one record per batch id."""
    # Every update takes the re-keying hop, even one already on its batch's partition: folding those at once
    # would let a batch's later event show in its state before earlier ones still on the hop.
    async for events in stream.take_events(*PROJECTION_BATCH):
        await _settle(events, _project)


async def _project(events: Sequence[EventT[Any]]) -> Pending:
    grouped: dict[str, list[BatchStateUpdate]] = {}
    projected: Counter[str] = Counter()
    sent: list[Awaitable[Any]] = []
    for event in events:
        message = event.message
        try:
            check_size(message.value, settings.max_message_bytes)
            update = decode_completion(message.topic, message.value)
        except PoisonMessage as exc:
            sent.append(await dead_letter(event, exc))
            continue
        projected[message.topic] += 1
        grouped.setdefault(update.batch_id, []).append(update)
    for batch_id, updates in grouped.items():
        # Straight to the producer, as the answers: Faust's Topic.send machinery (channel, FutureMessage, send
        # sensors) was ~8% of the worker's samples while registering batches, one re-keyed record per event.
        sent.append(
            await app.producer.send(BATCH_STATE_UPDATES, batch_id.encode(), _UPDATES.dump_json(updates), *_NO_EXTRAS)
        )
    for topic, count in projected.items():
        _events(topic, "projected").inc(count)
    return sent, None


def _decode_updates(value: bytes) -> list[BatchStateUpdate]:
    if value.lstrip()[:1] == b"[":
        return _UPDATES.validate_json(value)
    return [BatchStateUpdate.model_validate_json(value)]


@app.agent(updates_topic)
async def record_step_outcomes(stream: Any) -> None:
    """Fold re-keyed updates into the batch_state table (idempotent, order-insensitive), once per batch id."""
    async for events in stream.take_events(*PROJECTION_BATCH):
        await _settle(events, _record)


async def _record(events: Sequence[Any]) -> Pending:
    # Sends nothing of its own (its table writes reach the changelog as Faust's tables do): nothing to wait for.
    groups: dict[bytes, tuple[EventT[Any], list[BatchStateUpdate]]] = {}
    for event in events:
        groups.setdefault(event.message.key, (event, []))[1].extend(_decode_updates(event.message.value))
    for event, updates in groups.values():
        _fold(event, updates)
    return [], None


Command = EventEnvelope[ClientBatchPipelineRequestV1]


# prometheus_client's labels() looks the child up by label values on every call (2-3% of the worker's samples in
# the projection's profile); remember them.
@functools.cache
def _resolutions(outcome: str, reason_code: str) -> Any:
    return metrics.RESOLUTIONS.labels(outcome, reason_code)


@functools.cache
def _events(topic: str, outcome: str) -> Any:
    return metrics.EVENTS.labels(topic, outcome)


@functools.cache
def _state_updates(outcome: str) -> Any:
    return metrics.STATE_UPDATES.labels(outcome)


Answer = tuple[Command, RequestOutcome, bool]


def _decide(batch_id: str, items: Sequence[tuple[EventT[Any], Command]]) -> tuple[list[Answer], bool]:
    """Decide one batch's commands in order and record the new outcomes; a redelivered command keeps its answer.

    Return the answers and whether a new outcome was recorded.
    """
    answers = []
    with event_context(items[0][0]):
        requests = read_requests(batch_id)
        state: BatchState | None = None
        state_read = recorded = False
        version = 0
        for _, command in items:
            data = command.data
            outcome = requests.find(data.client_correlation_id) if requests else None
            redelivered = outcome is not None
            if outcome is None:
                if not state_read:
                    state, state_read = read_state(batch_id), True
                outcome = resolve_request(catalog, data, command.event_timestamp, state)
                # One write records this take's outcomes: they share the batch's next version.
                version = version or next_version(state, requests.version if requests else 0)
                outcome.version = version
                requests = record_request(requests, batch_id, outcome)
                recorded = True
            answers.append((command, outcome, redelivered))
        if recorded and requests is not None:
            write_requests(requests)
    return answers, recorded


async def _announce(answers: Sequence[Answer]) -> list[Awaitable[Any]]:
    """Send the events of each answer; return the pending sends."""
    sent = []
    for command, outcome, redelivered in answers:
        for out in output_events(command, outcome):
            # Straight to the producer: Faust's Topic.send machinery cost more than building the event.
            sent.append(await app.producer.send(out.topic, out.key.encode(), out.value, *_NO_EXTRAS))
        label = "redelivered" if redelivered else outcome.status
        _resolutions(label, outcome.reason_code or "").inc()
        metrics.RESOLUTION_SECONDS.observe(max(0.0, time.time() - command.event_timestamp.timestamp()))
    _events(Topic.PIPELINE_COMMAND, "resolved").inc(len(answers))
    return sent


@app.agent(command_topic)
async def resolve_pipeline_requests(stream: Any) -> None:
    """Resolve each command against its batch's state, the batch's commands of one take together."""
    async for events in stream.take_events(*RESOLUTION_BATCH):
        await _settle(events, _resolve)


async def _resolve(events: Sequence[EventT[Any]]) -> Pending:
    groups: dict[str, list[tuple[EventT[Any], Command]]] = {}
    sent: list[Awaitable[Any]] = []
    for event in events:
        message = event.message
        try:
            check_size(message.value, settings.max_message_bytes)
            command = decode_command(message.value)
        except PoisonMessage as exc:
            sent.append(await dead_letter(event, exc))
            continue
        key = command.data.batch_id.encode()
        if message.key != key:
            # Not keyed by batch id: re-key it so it lands on the partition that owns the batch's state.
            sent.append(await command_topic.send(key=key, value=message.value, force=True))
            _events(message.topic, "rerouted").inc()
            continue
        groups.setdefault(command.data.batch_id, []).append((event, command))
    answers: list[Answer] = []
    recorded = False
    for batch_id, items in groups.items():
        decided, new = _decide(batch_id, items)
        answers.extend(decided)
        recorded = recorded or new

    async def announce() -> list[Awaitable[Any]]:
        if recorded:
            # The recorded outcomes reach their changelog before any answer leaves: a crash after an answer
            # was sent then always finds the outcome again, so a redelivered command never gets a different one.
            await app.producer.flush()
        return await _announce(answers)

    return sent, announce


@app.timer(interval=15.0)
async def report_table_sizes() -> None:
    """Publish how many keys each table holds on this worker."""
    for table in (batch_state, pipeline_requests):
        metrics.TABLE_KEYS.labels(table.name).set(len(table))
