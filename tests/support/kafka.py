"""Real aiokafka producers and consumers for tests: send platform messages, collect outputs with a deadline."""

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from conductor.kafka_admin import produce

__all__ = ["collect", "committed_offsets", "data_of", "envelope_bytes", "produce", "wait_for"]


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
