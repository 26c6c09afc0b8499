"""Broker outages: the worker starts before its broker, and rides out a frozen broker without losing input."""

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conductor.broker import free_port
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import produce
from tests.support.processes import WorkerProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 8


def registered_count(worker: WorkerProcess, batch_ids: list[str]) -> int:
    count = 0
    for batch in batch_ids:
        try:
            response = worker.get(f"/batches/{batch}", timeout=3)
        except httpx.HTTPError:
            continue
        count += response.status_code == 200 and response.json()["registered"]
    return count


async def test_worker_started_before_broker_comes_up_on_its_own(tmp_path: Path) -> None:
    port = free_port()
    worker = WorkerProcess(f"kafka://127.0.0.1:{port}", tmp_path, free_port()).start()
    try:
        wait_until(lambda: "not reachable" in worker.log_tail(), 30, "worker reports the broker missing")
        with new_broker(tmp_path, port=port) as broker:
            worker.wait_ready(f"{worker.web_url}/healthz", 90)
            batch = f"late-{uuid.uuid4().hex[:6]}"
            event = m.registered(batch, ["e1"])
            await produce(broker.bootstrap, [(event["event_type"], batch.encode(), m.as_bytes(event))])
            wait_until(lambda: registered_count(worker, [batch]) == 1, 30, "event projected")
            worker.stop()
    finally:
        worker.stop()


async def test_frozen_broker_then_thawed_loses_nothing(tmp_path: Path) -> None:
    with new_broker(tmp_path) as broker:
        worker = WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait()
        try:
            batch_ids = [f"frozen-{uuid.uuid4().hex[:6]}-{i}" for i in range(100)]
            events = [m.registered(b, ["e1"]) for b in batch_ids]
            await produce(
                broker.bootstrap,
                [(e["event_type"], e["data"]["entity_id"].encode(), m.as_bytes(e)) for e in events[:50]],
            )
            broker.freeze()
            try:
                deadline = time.monotonic() + OUTAGE_SECONDS
                while time.monotonic() < deadline:  # the worker must stay up through the whole outage
                    assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
                    await asyncio.sleep(0.5)
            finally:
                broker.thaw()
            await produce(
                broker.bootstrap,
                [(e["event_type"], e["data"]["entity_id"].encode(), m.as_bytes(e)) for e in events[50:]],
            )
            wait_until(lambda: registered_count(worker, batch_ids) == 100, 90, "all 100 registrations projected")
        finally:
            worker.stop()
