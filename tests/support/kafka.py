"""Real aiokafka producers and consumers for tests: send platform messages, collect outputs with a deadline."""

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from conductor.kafka_admin import produce

__all__ = [
    "collect",
    "committed_offsets",
    "data_of",
    "end_offsets",
    "envelope_bytes",
    "produce",
    "read_to_end",
    "wait_committed_to_end",
    "wait_for",
]

# Room for the largest record a test writes (the poison test's 2 MiB message), so no fetch comes back truncated.
_FETCH_BYTES = 8 * 1024 * 1024


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """Serialise a message dict the way the platform does."""
    return json.dumps(envelope).encode()


async def collect(
    bootstrap: str,
    topics: Iterable[str],
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 30.0,
    keep: Callable[[ConsumerRecord[bytes, bytes]], bool] = lambda r: True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topics` from the beginning, keeping records that pass `keep`, until `until(kept)` or time runs out."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    kept: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(kept):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:.0f}s; collected {len(kept)} record(s)")
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batches.values():
                kept.extend(r for r in records if keep(r))
    finally:
        await consumer.stop()
    return kept


async def committed_offsets(
    bootstrap: str, group: str, topics: Iterable[str], partitions: int
) -> dict[str, int | None]:
    """Return the group's committed offset of every `topic[partition]` (None where nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {
            f"{topic}[{p}]": await consumer.committed(TopicPartition(topic, p))
            for topic in topics
            for p in range(partitions)
        }
    finally:
        await consumer.stop()


def data_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    """Return the `data` payload of an enveloped record."""
    return dict(json.loads(record.value or b"{}")["data"])


async def wait_for(condition: Callable[[], Any], timeout: float, message: str) -> Any:
    """Poll a synchronous condition from async code; return its truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s: {message}")


async def end_offsets(bootstrap: str, topics: Iterable[str], timeout: float = 15.0) -> dict[TopicPartition, int]:
    """Return the offset after the last record of every partition of `topics`, exact on any broker.

    ListOffsets is exact on Apache Kafka. The embedded broker (Tansu) answers it with the first offset of the
    partition's last record batch + 1 (platform notes), which falls short when that batch holds several records,
    but its fetches are right. So each non-empty partition is fetched once from the reported end - 1: that first
    fetch returns the whole batch holding that offset, and the end is the offset after its last record (the
    reported end itself on Kafka). No idle wait decides anything: a partition whose fetch does not come back
    within `timeout` fails the test. (Not for transactional topics, whose last offset may be a commit marker that no
    fetch returns: nothing here writes transactions.)
    """
    partitions = await _partitions(bootstrap, topics, timeout)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=_FETCH_BYTES
    )
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = {tp: int(end) for tp, end in (await consumer.end_offsets(partitions)).items()}
        probe = [tp for tp, end in ends.items() if end > 0]
        if probe:
            consumer.assign(probe)
            for tp in probe:
                consumer.seek(tp, ends[tp] - 1)
            waiting = set(probe)
            deadline = time.monotonic() + timeout
            while waiting:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no record came back from the end of {sorted(map(str, waiting))}")
                for tp, records in (await consumer.getmany(*waiting, timeout_ms=500)).items():
                    if records and tp in waiting:
                        ends[tp] = max(ends[tp], records[-1].offset + 1)
                        waiting.discard(tp)
                        consumer.pause(tp)  # one fetch is the snapshot; later records are not this end's
        return ends
    finally:
        await consumer.stop()


async def read_to_end(
    bootstrap: str,
    topics: Iterable[str],
    ends: dict[TopicPartition, int] | None = None,
    timeout: float = 60.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Return every record of `topics` from the beginning up to `ends` (by default the end offsets right now).

    Completeness is by offset, not by a quiet period: each partition is read until its end offset is reached,
    so a slow broker fails the test (after `timeout`) instead of passing it on a partial read.
    """
    topics = list(topics)
    if ends is None:
        ends = await end_offsets(bootstrap, topics)
    wanted = {tp: end for tp, end in ends.items() if tp.topic in topics}
    records: list[ConsumerRecord[bytes, bytes]] = []
    todo = {tp for tp, end in wanted.items() if end > 0}
    if not todo:
        # Also: aiokafka's consumer.stop() right after start() raises CancelledError (its no-group task never ran).
        return records
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=_FETCH_BYTES
    )
    await consumer.start()
    try:
        consumer.assign(list(todo))
        await consumer.seek_to_beginning(*todo)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                short = {str(tp): (await consumer.position(tp), wanted[tp]) for tp in todo}
                raise AssertionError(f"timed out after {timeout:.0f}s reading to the end; (position, end): {short}")
            for tp, batch in (await consumer.getmany(*todo, timeout_ms=500)).items():
                records.extend(r for r in batch if r.offset < wanted[tp])
                if batch and batch[-1].offset + 1 >= wanted[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return records


async def wait_committed_to_end(bootstrap: str, group: str, topics: Iterable[str], timeout: float = 60.0) -> None:
    """Wait until `group` has committed every partition of `topics` up to its end offset (taken now).

    The worker commits an input offset only once the outputs of that input are acknowledged by the broker
    (streams/agents.py), so afterwards everything it will write for those inputs is on its output topics.
    """
    topics = list(topics)
    ends = await end_offsets(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        behind: dict[str, tuple[int | None, int]] = {}
        deadline = time.monotonic() + timeout
        while True:
            behind = {}
            for tp, end in ends.items():
                committed = await consumer.committed(tp)
                if end > 0 and (committed is None or committed < end):
                    behind[str(tp)] = (committed, end)
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"group {group} not committed to the end after {timeout:.0f}s: {behind}")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topics: Iterable[str], timeout: float) -> list[TopicPartition]:
    """Return every partition of `topics` (their metadata asked for by name, with a deadline)."""
    # Not the consumer's cluster view: it holds only topics it was assigned or subscribed to (Tansu happens to
    # answer a metadata request for no topic with every topic; Apache Kafka answers it with none).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        found: list[TopicPartition] = []
        for topic in topics:
            parts = await asyncio.wait_for(producer.partitions_for(topic), timeout)
            found.extend(TopicPartition(topic, p) for p in sorted(parts))
        return found
    finally:
        await producer.stop()
