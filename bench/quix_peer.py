"""Ceiling 3: the projection as a Quix Streams app, with the project's own decoding and fold (run as a subprocess).

    .venv-quix/bin/python -m bench.quix_peer --bootstrap HOST:PORT --count N --result FILE --state-dir DIR TOPIC ...

What a user would pick instead of Faust, doing the worker's projection work: every completion event is decoded by
`streams.decoding.decode_completion` (both sample generations), re-keyed by batch id through an explicit internal
topic (`to_topic`, not `group_by`: `concat` + `group_by` turns on Quix's cross-topic time alignment, which stalls
for seconds on the embedded broker, platform notes), and folded into the batch's state with
`tables.projection.apply_updates` in a changelogged RocksDB store: one event at a time, as Quix processes them.
Writes one JSON object to FILE when N events were folded: the rate between the first folded event and the N-th, and
the process's CPU time (all threads, librdkafka's included) per event.

Runs in its own environment (`.venv-quix`, `requirements/quix.txt`): quixstreams 3.28 caps pydantic below the
project's release. It imports only the project's pure modules, never Faust or aiokafka.
"""

import argparse
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from quixstreams import Application, State
from quixstreams.models import TopicConfig
from quixstreams.models.serializers import Deserializer, Serializer

from contracts.state import BatchState, BatchStateUpdate
from streams.decoding import decode_completion
from tables.projection import apply_updates

PARTITIONS = 4  # as every topic of the phase (bench/phase.py)
# The embedded broker (Tansu 0.6) describes a topic with only the settings it was created with; Quix derives its
# changelog's settings from the re-key topic's retention and fails without them (platform notes).
TOPIC_SETTINGS = {"retention.ms": str(7 * 24 * 3600 * 1000), "retention.bytes": "-1"}
# Platform notes: without these the group join takes ~23 s on the embedded broker, and librdkafka's 500 ms fetch
# wait would idle the peer; a backlog drain is the same on Apache Kafka with them.
CONSUMER_SETTINGS = {"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 5}
STATE_KEY = "state"


class UpdateSerializer(Serializer):
    """A normalised update as the project's own JSON (pydantic)."""

    def __call__(self, value: BatchStateUpdate, ctx: Any) -> bytes:
        return value.model_dump_json().encode()


class UpdateDeserializer(Deserializer):
    """The re-keyed record back to the project's update model."""

    def __call__(self, value: bytes, ctx: Any) -> BatchStateUpdate:
        return BatchStateUpdate.model_validate_json(value)


class Counter:
    """Counts folded events; writes the progress and, at `count`, the result."""

    def __init__(self, count: int, result: Path) -> None:
        self.count = count
        self.result = result
        self.progress = result.with_suffix(".progress")
        self.seen = 0
        self.first = 0.0
        self.cpu = 0.0

    def tick(self) -> None:
        self.seen += 1
        if self.seen == 1:
            self.first, self.cpu = time.monotonic(), time.process_time()
        if self.seen % 1000 == 0:
            self.progress.write_text(str(self.seen))
        if self.seen == self.count:
            seconds = time.monotonic() - self.first
            cpu = time.process_time() - self.cpu  # every thread of the process
            events = self.count - 1
            self.result.write_text(json.dumps({"events": events, "seconds": seconds, "rate": events / seconds,
                                               "cpu_us_per_event": cpu / events * 1e6}))  # fmt: skip


def build(bootstrap: str, topics: list[str], counter: Counter, state_dir: Path) -> Application:
    """Return the Quix app: decode and re-key each completion topic, fold the re-keyed updates into state."""
    run = uuid.uuid4().hex[:8]
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{run}",
        auto_offset_reset="earliest",
        state_dir=str(state_dir),
        consumer_extra_config=CONSUMER_SETTINGS,
        loglevel="WARNING",
        processing_guarantee="at-least-once",
    )
    rekeyed = app.topic(
        f"bench.quix.updates.{run}",
        key_serializer="bytes",
        key_deserializer="bytes",
        value_serializer=UpdateSerializer(),
        value_deserializer=UpdateDeserializer(),
        config=TopicConfig(num_partitions=PARTITIONS, replication_factor=1, extra_config=TOPIC_SETTINGS),
    )
    for name in topics:
        source = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")

        def decode(value: bytes, topic: str = name) -> BatchStateUpdate:
            return decode_completion(topic, value)

        app.dataframe(source).apply(decode).to_topic(rekeyed, key=lambda update: update.batch_id.encode())

    def fold(update: BatchStateUpdate, state: State) -> None:
        raw = state.get(STATE_KEY)
        current = BatchState.model_validate_json(raw) if raw is not None else None
        new = apply_updates(current, (update,))
        if new is not current:
            new.version = (current.version if current else 0) + 1
            state.set(STATE_KEY, new.model_dump_json())
        counter.tick()

    app.dataframe(rekeyed).update(fold, stateful=True)
    return app


def main() -> None:
    """Run the peer until the bench stops it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    build(args.bootstrap, args.topics, Counter(args.count, args.result), args.state_dir).run()


if __name__ == "__main__":
    main()
