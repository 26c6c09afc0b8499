"""Input offsets without a record, and a batch whose body raises: a real worker neither stalls commits nor loses one.

Offsets without a record come from an upstream transactional producer (commit markers) and from records deleted
below the group's committed offset (DeleteRecords, as retention does); streams/faust_fixes.py must commit over them
(fix 3) and rewind past the deleted ones (fix 1). A body that raises must not have its batch committed unprocessed.
"""

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from conductor.broker import free_port
from contracts.topics import BATCH_STATE_UPDATES, Topic, dlq_topic
from tests.support import brokers
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import collect, committed_offsets, produce
from tests.support.processes import WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP = "batch_conductor"  # the worker's app id is its consumer group
PARTITIONS = 4
REGISTERED = Topic.BATCH_REGISTERED
FIXES = {"seek-uncommitted", "stale-fetch", "head-gap", "withhold-ack"}


def registered(batch: str) -> tuple[str, bytes, bytes]:
    return (REGISTERED, batch.encode(), m.as_bytes(m.registered(batch, [f"{batch}-e"])))


def known(worker: WorkerProcess, batches: list[str]) -> set[str]:
    """Return the batches the worker's state knows."""
    return {b for b in batches if worker.get(f"/batches/{b}", timeout=10).status_code == 200}


def wait_known(worker: WorkerProcess, batches: list[str], timeout: float = 90) -> None:
    seen: set[str] = set()

    def all_known() -> bool:
        seen.update(known(worker, sorted(set(batches) - seen)))
        return seen >= set(batches)

    try:
        wait_until(all_known, timeout, "every batch projected", interval=0.5)
    except AssertionError as exc:
        missing = sorted(set(batches) - seen)
        raise AssertionError(f"{exc}: {len(missing)} missing, e.g. {missing[:3]}\n{worker.log_tail(40)}") from None


async def record_ends(bootstrap: str, topic: str) -> dict[str, int]:
    """Return, per partition, the offset after its last record (a trailing transaction marker is not a record)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        last: dict[str, int] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                if records:
                    last[f"{topic}[{tp.partition}]"] = records[-1].offset + 1
        return last
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {f"{topic}[{tp.partition}]": end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


def wait_committed(bootstrap: str, topic: str, target: Callable[[], dict[str, int]], timeout: float = 60) -> None:
    """Wait until the group's committed offset reaches `target()` on every partition listed there."""
    last: dict[str, Any] = {}

    def reached() -> bool:
        wanted = target()
        last.update(asyncio.run(committed_offsets(bootstrap, GROUP, [topic], PARTITIONS)))
        last["wanted"] = wanted
        return all((last.get(key) or 0) >= offset for key, offset in wanted.items())

    try:
        wait_until(reached, timeout, f"commits reach the last record on {topic}", interval=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: committed {last}") from None


def worker_env() -> dict[str, str]:
    return {"CONDUCTOR_WORKER_LOG_LEVEL": "info"}


def assert_fixes_active(worker: WorkerProcess) -> None:
    """The worker's own consumer reports the fixes it runs (streams/faust_fixes.py install_report)."""
    line = next((x for x in worker.log_path.read_text().splitlines() if "Faust consumer fixes active" in x), "")
    assert line, f"no fix report in the worker's log:\n{worker.log_tail(30)}"
    assert FIXES <= set(line.rsplit(": ", 1)[1].strip().split(",")), line


@pytest.mark.skipif(
    brokers.kind() == "embedded", reason="the embedded broker (Tansu) has no transactions (InitProducerId, EndTxn)"
)
def test_transaction_markers_neither_stall_commits_nor_lose_records(tmp_path: Path) -> None:
    prefix = f"txn-{uuid.uuid4().hex[:6]}"
    batches = [f"{prefix}-{i}" for i in range(60)]

    async def produce_in_transactions() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"upstream-{prefix}")
        await producer.start()
        try:
            for start in range(0, len(batches), 6):  # 10 transactions: a commit marker on each partition they touch
                async with producer.transaction():
                    for topic, key, value in map(registered, batches[start : start + 6]):
                        await producer.send(topic, value, key=key)
        finally:
            await producer.stop()

    with new_broker(tmp_path) as broker:
        with WorkerProcess(broker.url, tmp_path, free_port(), **worker_env()).start_and_wait() as worker:
            assert_fixes_active(worker)
            asyncio.run(produce_in_transactions())
            wait_known(worker, batches)
            ends = asyncio.run(record_ends(broker.bootstrap, REGISTERED))
            markers = {k: v for k, v in asyncio.run(end_offsets(broker.bootstrap, REGISTERED)).items() if v > 0}
            assert sum(markers.values()) >= len(batches) + 10, "the transactions wrote no markers"
            # Every record committed: nothing left for a restart to replay, no commit stuck at a marker.
            wait_committed(broker.bootstrap, REGISTERED, lambda: ends)


async def delete_records_below(bootstrap: str, offsets: dict[int, int], topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, p): RecordsToDelete(o) for p, o in offsets.items()})
    finally:
        await admin.close()


def test_log_start_past_the_committed_offset_neither_stalls_commits_nor_loses_records(tmp_path: Path) -> None:
    prefix = f"del-{uuid.uuid4().hex[:6]}"
    first, deleted, kept = ([f"{prefix}-{part}-{i}" for i in range(24)] for part in ("a", "b", "c"))
    with new_broker(tmp_path) as broker:
        port = free_port()
        with WorkerProcess(broker.url, tmp_path, port, **worker_env()).start_and_wait() as worker:
            asyncio.run(produce(broker.bootstrap, map(registered, first)))
            wait_known(worker, first)
        # The worker is gone (it committed what it processed); these records arrive and are deleted unread, as
        # retention would: the log start moves past the group's committed offset.
        asyncio.run(produce(broker.bootstrap, map(registered, deleted)))
        log_start = {int(k[-2]): v for k, v in asyncio.run(end_offsets(broker.bootstrap, REGISTERED)).items()}
        try:
            asyncio.run(delete_records_below(broker.bootstrap, log_start, REGISTERED))
        except Exception as exc:  # a broker without DeleteRecords cannot show this case
            if brokers.kind() == "embedded":
                pytest.skip(f"the embedded broker (Tansu) does not delete records: {exc!r}")
            raise
        asyncio.run(produce(broker.bootstrap, map(registered, kept)))
        with WorkerProcess(broker.url, tmp_path, port, **worker_env()).start_and_wait() as worker:
            wait_known(worker, kept)
            assert not known(worker, deleted), "records deleted before the restart were projected"
            ends = asyncio.run(end_offsets(broker.bootstrap, REGISTERED))
            wait_committed(broker.bootstrap, REGISTERED, lambda: ends)


def test_a_raising_batch_is_retried_then_dead_lettered_and_the_rest_processed(tmp_path: Path) -> None:
    prefix = f"raise-{uuid.uuid4().hex[:6]}"
    batches = [f"{prefix}-{i}" for i in range(40)]
    poison_key = batches[7].encode()
    # An update record the fold cannot read (say, from a worker of another version): record_step_outcomes' body
    # raises on it. It shares a partition (same key) with good updates of the same take batch.
    poison = (BATCH_STATE_UPDATES, poison_key, b'{"not": "an update"}')
    with new_broker(tmp_path) as broker:
        with WorkerProcess(broker.url, tmp_path, free_port(), **worker_env()).start_and_wait() as worker:
            assert_fixes_active(worker)
            good = list(map(registered, batches))
            asyncio.run(produce(broker.bootstrap, [*good[:20], poison, *good[20:]]))
            wait_known(worker, batches)
            dead = asyncio.run(
                collect(broker.bootstrap, [dlq_topic(BATCH_STATE_UPDATES)], lambda kept: len(kept) >= 1, 60)
            )
            record = json.loads(dead[0].value)
            assert record["dlq_reason"].startswith("processing failed: ValidationError"), record
            assert dead[0].key == poison_key
            ends = asyncio.run(end_offsets(broker.bootstrap, BATCH_STATE_UPDATES))
            wait_committed(broker.bootstrap, BATCH_STATE_UPDATES, lambda: ends)
            assert "failed (attempt 3 of 3)" in worker.log_path.read_text()
