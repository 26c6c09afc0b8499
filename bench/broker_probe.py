"""Measure a phase's broker on its own: the acks=all produce round trip and the delay to an idle consumer.

These are the figures the summary explains broker differences with (bench/report.py): every command, answer and
re-keyed record waits for one acks=all round trip, and every record reaches a waiting consumer after the broker
answers its fetch (Tansu only when the fetch's wait runs out; Apache Kafka as soon as the record is there).
"""

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

PROBE_TOPIC = "bench.broker.probe"
PRODUCES = 100
DELIVERIES = 30
RECORD = b"x" * 870  # the projection workload's mean event size


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


async def probe(bootstrap: str, fetch_wait_ms: int) -> dict[str, Any]:
    """Return produce (acks=all, one at a time) and produce -> idle consumer latencies, ms, p50 / p99."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, fetch_max_wait_ms=fetch_wait_ms
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(PROBE_TOPIC, RECORD, partition=0)  # metadata and connection, not measured
        produce_ms = []
        for _ in range(PRODUCES):
            started = time.perf_counter()
            await producer.send_and_wait(PROBE_TOPIC, RECORD, partition=0)
            produce_ms.append((time.perf_counter() - started) * 1000)
        tp = TopicPartition(PROBE_TOPIC, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        sent: dict[int, float] = {}
        arrived: dict[int, float] = {}

        async def read() -> None:
            while len(arrived) < DELIVERIES:
                batches = await consumer.getmany(timeout_ms=2000)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        if record.key is not None:
                            arrived.setdefault(int(record.key), now)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.2)  # the consumer is waiting in a fetch
        for i in range(DELIVERIES):
            await asyncio.sleep(0.03)
            sent[i] = time.perf_counter()
            await producer.send_and_wait(PROBE_TOPIC, RECORD, key=str(i).encode(), partition=0)
        await asyncio.wait_for(reader, 30)
        delivery_ms = [(arrived[i] - sent[i]) * 1000 for i in sent]
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "produce_ms": {"p50": _pct(produce_ms, 50), "p99": _pct(produce_ms, 99)},
        "delivery_ms": {"p50": _pct(delivery_ms, 50), "p99": _pct(delivery_ms, 99)},
        "delivery_fetch_wait_ms": fetch_wait_ms,
    }
