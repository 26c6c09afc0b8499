"""The gateway on the real worker and broker: status, ownership and a request followed to its outcome.

The worker and both gateways (auth `none` and auth `jwt`) share one internal token, so the gateway->worker
authentication is exercised end to end too.
"""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import produce
from tests.support.processes import WorkerProcess, wait_until
from tests.support.tokens import JWT_ENV, bearer, token

pytestmark = pytest.mark.integration

INTERNAL_TOKEN = {"CONDUCTOR_INTERNAL_TOKEN": "gateway-to-worker-secret"}
LIMITS = {
    f"CONDUCTOR_GATEWAY_RATE_LIMIT_{name}": "1000/second"
    for name in ("REQUEST_PIPELINE", "BATCH_STATUS", "REQUEST_OUTCOME")
}
ADMIN = bearer(token("ops-1", roles=["admin"]))


class Stack:
    def __init__(self, broker: Broker, worker: WorkerProcess, open_gw: GatewayProcess, jwt_gw: GatewayProcess):
        self.broker, self.worker, self.open, self.jwt = broker, worker, open_gw, jwt_gw

    def register(self, owner: str | None, essays: int = 2) -> str:
        """Register a fresh batch with the worker (through Kafka) and wait until the gateway sees it."""
        batch = f"gw-{uuid.uuid4().hex[:10]}"
        msg = m.registered(batch, [f"{batch}-e{i}" for i in range(essays)], user_id=owner)
        asyncio.run(produce(self.broker.bootstrap, [(msg["event_type"], batch.encode(), m.as_bytes(msg))]))
        wait_until(lambda: _get(self.open, f"/v1/batches/{batch}/status").status_code == 200, 30, f"{batch} visible")
        return batch


def _get(gateway: GatewayProcess, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with gateway.client() as client:
        return client.get(path, headers=headers or {})


def _post(gateway: GatewayProcess, batch: str, pipeline: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with gateway.client() as client:
        return client.post(
            f"/v1/batches/{batch}/pipelines", json={"requested_pipeline": pipeline}, headers=headers or {}
        )


def outcome(gateway: GatewayProcess, accepted: httpx.Response, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Follow a 202's status_url until the request is no longer pending; return the outcome."""
    assert accepted.status_code == 202, accepted.text
    seen: dict[str, Any] = {}

    def settled() -> bool:
        seen.update(_get(gateway, accepted.json()["status_url"], headers).json())
        return seen["status"] != "pending"

    wait_until(settled, 30, f"outcome of {accepted.json()['correlation_id']}; last {seen}")
    return seen


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("gateway-worker")
    with new_broker(workdir) as broker:
        with WorkerProcess(broker.url, workdir, free_port(), **INTERNAL_TOKEN) as worker:
            open_gw = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, **INTERNAL_TOKEN, **LIMITS)
            jwt_gw = GatewayProcess(
                broker.url, workdir, free_port(), worker.web_url, **INTERNAL_TOKEN, **LIMITS, **JWT_ENV
            )
            try:
                yield Stack(broker, worker, open_gw.start_and_wait(), jwt_gw.start_and_wait())
            finally:
                open_gw.stop()
                jwt_gw.stop()


def test_ready_with_a_real_worker(stack: Stack) -> None:
    assert _get(stack.open, "/readyz").json() == {"status": "ready", "checks": {"broker": "ok", "worker": "ok"}}


def test_a_request_is_followed_to_its_resolved_outcome(stack: Stack) -> None:
    batch = stack.register("dev-user")
    status = _get(stack.open, f"/v1/batches/{batch}/status").json()
    assert status["registered"] and status["expected_essay_count"] == 2 and status["user_id"] == "dev-user"
    accepted = _post(stack.open, batch, "ai_feedback")
    result = outcome(stack.open, accepted)
    assert result["status"] == "resolved" and result["correlation_id"] == accepted.json()["correlation_id"]
    assert result["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]
    assert [s["name"] for s in result["steps"]] == result["final_pipeline"]
    assert result["requested_pipeline"] == "ai_feedback" and result["user_id"] == "dev-user"
    recent = _get(stack.open, f"/v1/batches/{batch}/status").json()["recent_requests"]
    assert accepted.json()["correlation_id"] in {r["client_correlation_id"] for r in recent}


def test_unknown_batches_are_404_everywhere(stack: Stack) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    assert _post(stack.open, ghost, "nlp").json()["code"] == "BATCH_NOT_FOUND"
    assert _get(stack.open, f"/v1/batches/{ghost}/status").status_code == 404
    assert _get(stack.open, f"/v1/batches/{ghost}/pipelines/{uuid.uuid4()}").status_code == 404


def test_owner_acts_and_reads_others_are_forbidden(stack: Stack) -> None:
    batch = stack.register("teacher-1")
    owner, other = bearer(token("teacher-1")), bearer(token("teacher-2"))
    accepted = _post(stack.jwt, batch, "nlp", owner)
    assert outcome(stack.jwt, accepted, owner)["status"] == "resolved"
    assert _post(stack.jwt, batch, "nlp", other).json()["code"] == "FORBIDDEN"
    assert _get(stack.jwt, f"/v1/batches/{batch}/status", other).status_code == 403
    assert _get(stack.jwt, accepted.json()["status_url"], other).status_code == 403
    assert _get(stack.jwt, f"/v1/batches/{batch}/status", ADMIN).status_code == 200
    assert _get(stack.jwt, f"/v1/batches/{batch}/status").status_code == 401


def test_batch_without_owner_is_for_admins_only(stack: Stack) -> None:
    batch = stack.register(None)
    assert _post(stack.jwt, batch, "spellcheck", bearer(token("teacher-1"))).json()["code"] == "FORBIDDEN"
    assert outcome(stack.jwt, _post(stack.jwt, batch, "spellcheck", ADMIN), ADMIN)["status"] == "resolved"


def test_auth_none_acts_as_the_dev_user_so_the_worker_refuses_others_batches(stack: Stack) -> None:
    # The gateway lets everything through in auth mode none; the worker still checks ownership (defence in depth).
    batch = stack.register("teacher-9")
    result = outcome(stack.open, _post(stack.open, batch, "nlp"))
    assert (result["status"], result["reason_code"]) == ("failed", "FORBIDDEN")
