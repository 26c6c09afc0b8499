"""Table state survives losing the local store, and two workers share partitions and answer for any batch."""

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.kafka import produce
from tests.support.processes import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

BATCHES = 12


async def seed(broker: Broker, worker: WorkerProcess, prefix: str) -> dict[str, Any]:
    """Register BATCHES batches with mixed outcomes, then request a pipeline for each; return their settled views."""
    batch_ids = [f"{prefix}-{i}" for i in range(BATCHES)]
    msgs: list[dict[str, Any]] = []
    for i, batch in enumerate(batch_ids):
        essays = [f"{batch}-e{j}" for j in range(3)]
        msgs.append(m.registered(batch, essays))
        msgs.extend(m.spellcheck(batch, e, ok=(i + j) % 4 != 0) for j, e in enumerate(essays))
    await produce(broker.bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in msgs])
    settled(worker, batch_ids, requests=False)
    commands = [m.command(batch, "ai_feedback") for batch in batch_ids]
    await produce(broker.bootstrap, [(x["event_type"], _key(x), m.as_bytes(x)) for x in commands])
    return settled(worker, batch_ids, requests=True)


def _key(msg: dict[str, Any]) -> bytes:
    data = msg["data"]
    return str(data.get("batch_id") or data.get("entity_id") or data.get("parent_id")).encode()


def views(worker: WorkerProcess, batch_ids: list[str]) -> dict[str, Any]:
    out = {}
    for batch in batch_ids:
        response = worker.get(f"/batches/{batch}", timeout=5)
        out[batch] = response.json() if response.status_code == 200 else response.status_code
    return out


def settled(worker: WorkerProcess, batch_ids: list[str], requests: bool) -> dict[str, Any]:
    """Wait until every batch is registered with all essays reported (and, if asked, its request answered)."""
    last: dict[str, Any] = {}

    def done() -> bool:
        last.clear()
        last.update(views(worker, batch_ids))
        return all(
            isinstance(v, dict)
            and v["registered"]
            and (bool(v["recent_requests"]) or not requests)
            and next(s for s in v["steps"] if s["step"] == "spellcheck")["pending"] == 0
            for v in last.values()
        )

    wait_until(done, 60, "all batches projected and answered")
    return dict(last)


async def test_deleted_store_is_rebuilt_identically_from_changelog(tmp_path: Path) -> None:
    with new_broker(tmp_path) as broker:
        worker = WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait()
        try:
            before = await seed(broker, worker, f"rec-{uuid.uuid4().hex[:6]}")
        finally:
            worker.stop()
        shutil.rmtree(worker.data_dir)
        restarted = WorkerProcess(broker.url, tmp_path, worker.web_port).start_and_wait()
        try:
            after = views(restarted, list(before))
        finally:
            restarted.stop()
    assert after == before


async def test_two_workers_split_partitions_and_answer_for_any_batch(tmp_path: Path) -> None:
    with new_broker(tmp_path) as broker:
        first = WorkerProcess(broker.url, tmp_path, free_port()).start_and_wait()
        second = WorkerProcess(broker.url, tmp_path, free_port()).start()
        try:
            second.wait_ready(f"{second.web_url}/healthz", 90)

            def split() -> bool:
                mine = [w.get("/assignment/", timeout=5).json() for w in (first, second)]
                return all(a.get("actives") for a in mine)

            wait_until(split, 60, "both workers own partitions")
            from_first = await seed(broker, first, f"two-{uuid.uuid4().hex[:6]}")
            from_second = views(second, list(from_first))
        finally:
            second.stop()
            first.stop()
    assert from_second == from_first
    assert all(v["recent_requests"][0]["status"] == "resolved" for v in from_first.values())
