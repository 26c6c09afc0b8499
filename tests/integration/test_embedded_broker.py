"""The embedded broker starts on a free port, carries messages, and leaves no process behind."""

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from conductor.broker import EmbeddedBroker, wait_for_port
from conductor.kafka_admin import ensure_topics

pytestmark = pytest.mark.integration


async def test_round_trip_through_real_broker(broker: EmbeddedBroker) -> None:
    topic = "test.broker.roundtrip"
    await ensure_topics(broker.bootstrap, [topic], partitions=4)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=15)
    finally:
        await consumer.stop()
    assert (message.key, message.value) == (b"k", b"hello")


async def test_ensure_topics_creates_once_with_partition_count(broker: EmbeddedBroker) -> None:
    topic = "test.broker.partitions"
    assert await ensure_topics(broker.bootstrap, [topic], partitions=3) == [topic]
    assert await ensure_topics(broker.bootstrap, [topic], partitions=3) == []
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        assert sorted(await producer.partitions_for(topic)) == [0, 1, 2]
    finally:
        await producer.stop()


def test_stop_frees_the_port() -> None:
    embedded = EmbeddedBroker().start()
    pid = embedded.process.pid if embedded.process else -1
    embedded.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    again = EmbeddedBroker(port=embedded.port).start()  # the same port is usable again
    again.stop()


def test_broker_dies_with_the_process_that_started_it() -> None:
    code = (
        "from conductor.broker import EmbeddedBroker; import sys, time; "
        "b = EmbeddedBroker().start(); print(b.process.pid, b.port, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    broker_pid, port = (int(x) for x in parent.stdout.readline().split())
    wait_for_port("127.0.0.1", port, timeout=10)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(broker_pid, 0)
        except ProcessLookupError:
            break
        try:  # reap it if it is our grandchild turned zombie of init: just poll
            os.waitpid(broker_pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        pytest.fail(f"broker {broker_pid} outlived its parent")
