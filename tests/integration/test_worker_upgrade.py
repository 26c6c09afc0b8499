"""A worker upgraded on a live store: table rows written by the worker before issue 13's changes read back alike.

`tests/fixtures/stored/before-issue13.json` holds what the worker of commit a05b0d0 wrote for six batches (both
sample generations) and 21 commands: its `batch_state` and `pipeline_requests` changelog records, the commands,
its answers and its batch views. The current worker recovers those rows from the changelog (the bytes a live store
holds are the same ones) and must show the same views and give every redelivered command the same answer, byte for
byte.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from conductor.broker import free_port
from contracts.topics import Topic
from tests.support.brokers import new_broker
from tests.support.kafka import collect, produce
from tests.support.processes import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "stored" / "before-issue13.json"
OUTPUTS = [Topic.PIPELINE_RESOLVED, Topic.PIPELINE_RESOLUTION_FAILED, Topic.PHASE_SKIPPED]


async def _write_changelog(bootstrap: str, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                record["topic"], record["value"].encode(), key=record["key"].encode(), partition=record["partition"]
            )
    finally:
        await producer.stop()


def _views(worker: WorkerProcess, batches: list[str]) -> dict[str, Any]:
    return {b: worker.get(f"/batches/{b}").json() for b in batches}


async def test_rows_written_before_the_upgrade_read_back_and_answer_alike(tmp_path: Path) -> None:
    stored = json.loads(FIXTURE.read_text())
    with new_broker(tmp_path) as broker:
        # The worker creates its topics (changelogs included), then the old worker's rows go into the changelogs.
        first = WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait()
        first.stop()
        shutil.rmtree(first.data_dir)
        await _write_changelog(broker.bootstrap, stored["changelog"])
        worker = WorkerProcess(broker.url, tmp_path, first.web_port).start_and_wait()
        try:
            batches = list(stored["views"])
            assert _views(worker, batches) == stored["views"]

            commands = [c.encode() for c in stored["commands"]]
            keys = [json.loads(c)["data"]["batch_id"].encode() for c in commands]
            await produce(
                broker.bootstrap, [(Topic.PIPELINE_COMMAND, k, c) for k, c in zip(keys, commands, strict=True)]
            )
            wanted = len(stored["answers"])
            answers = await collect(broker.bootstrap, OUTPUTS, lambda kept: len(kept) >= wanted, timeout=60)
            got = sorted((r.topic, r.key.decode(), r.value.decode()) for r in answers)
            assert got == sorted((a["topic"], a["key"], a["value"]) for a in stored["answers"])

            # A new request on a stored batch is appended to the old log.
            new = json.loads(stored["commands"][0])
            new["correlation_id"] = new["data"]["client_correlation_id"] = "00000000-0000-4000-8000-0000000000aa"
            new["event_id"] = "00000000-0000-4000-8000-0000000000ab"
            batch = new["data"]["batch_id"]
            before = len(stored["views"][batch]["recent_requests"])
            await produce(broker.bootstrap, [(Topic.PIPELINE_COMMAND, batch.encode(), json.dumps(new).encode())])
            wait_until(
                lambda: len(worker.get(f"/batches/{batch}").json()["recent_requests"]) == before + 1,
                30,
                "the new request recorded next to the old ones",
            )
        finally:
            worker.stop()
