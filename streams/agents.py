"""The worker's agents: decode -> pure call -> table write -> send. Bad input goes to the DLQ."""

import logging
import time
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT

from contracts.state import BatchStateUpdate
from contracts.topics import BATCH_STATE_UPDATES, COMPLETION_TOPICS, INPUT_TOPICS, OUTPUT_TOPICS, Topic, dlq_topic
from streams import metrics
from streams.app import app, catalog
from streams.decoding import PoisonMessage, decode_command, decode_completion
from streams.dlq import build_dlq_record
from streams.resolution import output_events, resolve_request
from tables.batch_state import (
    batch_state,
    pipeline_requests,
    read_requests,
    read_state,
    write_requests,
    write_state,
)
from tables.projection import apply_update, record_request

log = logging.getLogger(__name__)

_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

completion_topic = app.topic(*COMPLETION_TOPICS, **_RAW)
command_topic = app.topic(Topic.PIPELINE_COMMAND, **_RAW)
updates_topic = app.topic(BATCH_STATE_UPDATES, **_RAW)
output_topics = {name: app.topic(name, **_RAW) for name in OUTPUT_TOPICS}
dlq_topics = {name: app.topic(dlq_topic(name), **_RAW) for name in INPUT_TOPICS}


async def dead_letter(event: EventT[Any], error: PoisonMessage) -> None:
    """Send an undecodable input message to its topic's DLQ with the reason; the stream goes on."""
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
    await dlq_topics[message.topic].send(key=message.key, value=record, force=True)
    metrics.DLQ_RECORDS.labels(message.topic).inc()
    metrics.EVENTS.labels(message.topic, "dead_lettered").inc()
    log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, error.reason)


@app.agent(completion_topic)
async def project_completion_events(stream: Any) -> None:
    """Normalise completion events of both generations and re-key them by batch id."""
    async for event in stream.events():
        try:
            update = decode_completion(event.message.topic, event.message.value)
        except PoisonMessage as exc:
            await dead_letter(event, exc)
            continue
        await updates_topic.send(key=update.batch_id.encode(), value=update.model_dump_json().encode(), force=True)
        metrics.EVENTS.labels(event.message.topic, "projected").inc()


@app.agent(updates_topic)
async def record_step_outcomes(stream: Any) -> None:
    """Fold normalised updates into the batch_state table (idempotent, order-insensitive)."""
    async for value in stream:
        update = BatchStateUpdate.model_validate_json(value)
        state = read_state(update.batch_id)
        new_state = apply_update(state, update)
        if new_state is not state:
            write_state(new_state)


@app.agent(command_topic)
async def resolve_pipeline_requests(stream: Any) -> None:
    """Resolve each command against its batch's state; a redelivered command gets its stored answer again."""
    async for event in stream.events():
        message = event.message
        try:
            command = decode_command(message.value)
        except PoisonMessage as exc:
            await dead_letter(event, exc)
            continue
        data = command.data
        key = data.batch_id.encode()
        if message.key != key:
            # Not keyed by batch id: re-key it so it lands on the partition that owns the batch's state.
            await command_topic.send(key=key, value=message.value, force=True)
            metrics.EVENTS.labels(message.topic, "rerouted").inc()
            continue
        requests = read_requests(data.batch_id)
        outcome = requests.find(data.client_correlation_id) if requests else None
        redelivered = outcome is not None
        if outcome is None:
            outcome = resolve_request(catalog, data, command.event_timestamp, read_state(data.batch_id))
            write_requests(record_request(requests, data.batch_id, outcome))
        for out in output_events(command, outcome):
            await output_topics[out.topic].send(key=out.key.encode(), value=out.value, force=True)
        label = "redelivered" if redelivered else outcome.status
        metrics.RESOLUTIONS.labels(label, outcome.reason_code or "").inc()
        metrics.EVENTS.labels(message.topic, "resolved").inc()
        metrics.RESOLUTION_SECONDS.observe(max(0.0, time.time() - command.event_timestamp.timestamp()))


@app.timer(interval=15.0)
async def report_table_sizes() -> None:
    """Publish how many keys each table holds on this worker."""
    for table in (batch_state, pipeline_requests):
        metrics.TABLE_KEYS.labels(table.name).set(len(table))
