"""The test helpers that read a topic to its end are exact: on the embedded broker, whose ListOffsets falls short
when a partition's last record batch holds several records, and on Apache Kafka, where it is exact."""

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from conductor.brokers import Broker
from conductor.kafka_admin import ensure_topics
from tests.support.kafka import end_offsets, read_to_end

pytestmark = pytest.mark.integration

PARTITIONS = 3


async def _send_batched(bootstrap: str, topic: str, per_partition: int, rounds: int) -> list[bytes]:
    """Write `rounds` record batches of `per_partition` records to every partition; return the values in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1000)
    await producer.start()
    values: list[bytes] = []
    try:
        for r in range(rounds):
            pending = []
            for p in range(PARTITIONS):
                for i in range(per_partition):
                    value = f"{r}-{p}-{i}".encode()
                    values.append(value)
                    pending.append(await producer.send(topic, value, partition=p))
            await producer.flush()  # one batch per partition and round
            for future in pending:
                await future
    finally:
        await producer.stop()
    return values


async def test_end_offsets_and_read_to_end_are_exact_when_the_last_batch_holds_many_records(
    broker: Broker,
) -> None:
    topic = f"test.support.ends-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, [topic], partitions=PARTITIONS)
    empty = f"{topic}-empty"
    await ensure_topics(broker.bootstrap, [empty], partitions=PARTITIONS)
    values = await _send_batched(broker.bootstrap, topic, per_partition=5, rounds=2)

    ends = await end_offsets(broker.bootstrap, [topic, empty])
    assert ends == {
        **{TopicPartition(topic, p): 10 for p in range(PARTITIONS)},
        **{TopicPartition(empty, p): 0 for p in range(PARTITIONS)},
    }
    records = await read_to_end(broker.bootstrap, [topic, empty], ends)
    assert sorted(r.value for r in records if r.value is not None) == sorted(values)

    # Records written after the end offsets were taken are not read.
    await _send_batched(broker.bootstrap, topic, per_partition=2, rounds=1)
    assert len(await read_to_end(broker.bootstrap, [topic], ends)) == len(values)
    assert len(await read_to_end(broker.bootstrap, [topic])) == len(values) + 2 * PARTITIONS


async def test_what_the_broker_reports_is_never_beyond_the_exact_end(broker: Broker) -> None:
    # The reason for the probe: on the embedded broker the reported end may fall short, never overshoot.
    topic = f"test.support.report-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, [topic], partitions=PARTITIONS)
    await _send_batched(broker.bootstrap, topic, per_partition=4, rounds=1)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
    await consumer.start()
    try:
        reported = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    exact = await end_offsets(broker.bootstrap, [topic])
    assert all(0 < reported[tp] <= exact[tp] == 4 for tp in exact), (reported, exact)
