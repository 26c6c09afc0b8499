"""The worker's internal token, end to end: a real worker refuses its views without the right `X-Internal-Token`,
leaks nothing while refusing, and a real gateway holding the wrong token answers a problem document, never data.

README: `CONDUCTOR_INTERNAL_TOKEN` is the "shared secret the gateway sends as `X-Internal-Token` and the worker
views require"; a gateway the worker refuses answers 502 `WORKER_ERROR` (retrying would not help).
"""

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from contracts.topics import Topic
from tests.support import messages as m
from tests.support.brokers import new_broker
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import produce, read_to_end
from tests.support.processes import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

TOKEN = "worker-views-secret-6f1c2b"
WRONG = "worker-views-secret-WRONG"
OWNER = "dev-user"  # the gateway's user in auth mode `none`
REFUSAL = {"detail": "missing or wrong X-Internal-Token header"}


@dataclass
class Stack:
    broker: Broker
    worker: WorkerProcess
    right: GatewayProcess  # the worker's token
    wrong: GatewayProcess  # another token
    batch: str
    essays: list[str]
    correlation_id: str

    def view(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(f"{self.worker.web_url}{path}", headers=headers or {}, timeout=10, trust_env=False)

    @property
    def secrets(self) -> list[str]:
        """What a refusal must not show: the tokens and anything the worker knows about the batch."""
        return [TOKEN, WRONG, self.batch, *self.essays, self.correlation_id, OWNER]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("internal-token")
    batch = f"tok-{uuid.uuid4().hex[:8]}"
    essays = [f"{batch}-essay-{i}" for i in range(2)]
    command = m.command(batch, "nlp", user_id=OWNER)
    with new_broker(workdir) as broker:
        with WorkerProcess(broker.url, workdir, free_port(), CONDUCTOR_INTERNAL_TOKEN=TOKEN) as worker:
            right = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, CONDUCTOR_INTERNAL_TOKEN=TOKEN)
            wrong = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, CONDUCTOR_INTERNAL_TOKEN=WRONG)
            try:
                right.start_and_wait()
                wrong.start_and_wait()
                stack = Stack(broker, worker, right, wrong, batch, essays, command["correlation_id"])
                registered = m.registered(batch, essays, user_id=OWNER)
                asyncio.run(
                    produce(broker.bootstrap, [(registered["event_type"], batch.encode(), m.as_bytes(registered))])
                )
                wait_until(
                    lambda: stack.view(f"/batches/{batch}", {"X-Internal-Token": TOKEN}).status_code == 200, 60, "known"
                )
                asyncio.run(produce(broker.bootstrap, [(command["event_type"], batch.encode(), m.as_bytes(command))]))
                answered = f"/batches/{batch}/requests/{stack.correlation_id}"
                wait_until(lambda: stack.view(answered, {"X-Internal-Token": TOKEN}).status_code == 200, 60, "answered")
                yield stack
            finally:
                right.stop()
                wrong.stop()


def _views(stack: Stack) -> dict[str, str]:
    return {
        "batch status": f"/batches/{stack.batch}",
        "request outcome": f"/batches/{stack.batch}/requests/{stack.correlation_id}",
        "unknown batch": f"/batches/ghost-{uuid.uuid4().hex[:8]}",
        "unknown request": f"/batches/{stack.batch}/requests/{uuid.uuid4()}",
        "malformed correlation id": f"/batches/{stack.batch}/requests/not-a-uuid",
    }


BAD_HEADERS = {
    "missing": {},
    "empty": {"X-Internal-Token": ""},
    "wrong": {"X-Internal-Token": WRONG},
    "prefix of the right one": {"X-Internal-Token": TOKEN[:-1]},
    "right one plus a character": {"X-Internal-Token": TOKEN + "x"},
    "upper case": {"X-Internal-Token": TOKEN.upper()},
    "as a bearer token": {"Authorization": f"Bearer {TOKEN}"},
    "in another header": {"X-Internal-Tokens": TOKEN},
}


@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_every_view_refuses_a_missing_or_wrong_token_and_leaks_nothing(stack: Stack, headers: dict[str, str]) -> None:
    for name, path in _views(stack).items():
        response = stack.view(path, headers)
        # 401 before anything else: not 404 for an unknown batch (no existence oracle), not 400 for a bad id.
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert response.json() == REFUSAL, (name, response.text)
        assert not [s for s in stack.secrets if s in response.text], (name, response.text)
        assert not [s for s in stack.secrets if s in str(response.headers)], (name, response.headers)


def test_the_right_token_reads_every_view(stack: Stack) -> None:
    """The control: the refusals above are about the token, and the leak check would see the data."""
    right = {"X-Internal-Token": TOKEN}
    expected = {"batch status": 200, "request outcome": 200, "unknown batch": 404, "unknown request": 404}
    expected["malformed correlation id"] = 400
    statuses = {name: stack.view(path, right).status_code for name, path in _views(stack).items()}
    assert statuses == expected
    status = stack.view(f"/batches/{stack.batch}", right)
    assert status.json()["user_id"] == OWNER and status.json()["expected_essay_count"] == 2
    outcome = stack.view(f"/batches/{stack.batch}/requests/{stack.correlation_id}", right).json()
    assert outcome["status"] == "resolved" and outcome["final_pipeline"] == ["spellcheck", "nlp"]


def test_faust_table_pages_do_not_bypass_the_token(stack: Stack) -> None:
    # Faust's own web views can serve table contents (`web_tables_enabled`); they know no token.
    for path in (
        f"/table/batch_state/{stack.batch}/",
        f"/table/pipeline_requests/{stack.batch}/",
        "/table/batch_state/",
    ):
        response = stack.view(path)
        assert response.status_code == 404, (path, response.status_code, response.text[:300])
        assert not [s for s in stack.secrets if s in response.text], (path, response.text[:300])


def _gateway_calls(gateway: GatewayProcess, stack: Stack) -> dict[str, httpx.Response]:
    with gateway.client() as client:
        return {
            "status": client.get(f"/v1/batches/{stack.batch}/status"),
            "outcome": client.get(f"/v1/batches/{stack.batch}/pipelines/{stack.correlation_id}"),
            "post": client.post(
                f"/v1/batches/{stack.batch}/pipelines",
                json={"requested_pipeline": "nlp"},
                headers={"X-Correlation-ID": str(uuid.uuid4())},
            ),
        }


def test_a_gateway_with_the_wrong_token_answers_502_problem_and_publishes_nothing(stack: Stack) -> None:
    calls = _gateway_calls(stack.wrong, stack)
    for name, response in calls.items():
        assert response.status_code == 502, (name, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json", name
        problem = response.json()
        assert (problem["status"], problem["code"]) == (502, "WORKER_ERROR"), (name, problem)
        assert "internal token" in problem["detail"], (name, problem)
        assert not [s for s in [TOKEN, WRONG, *stack.essays, OWNER] if s in response.text], (name, response.text)
        assert "retry-after" not in response.headers, name  # a wrong token is no transient fault
    refused_post = calls["post"].headers["X-Correlation-ID"]
    assert "worker refused the internal token" in stack.wrong.logs()
    # The control: the same requests through a gateway holding the right token.
    good = _gateway_calls(stack.right, stack)
    assert {name: r.status_code for name, r in good.items()} == {"status": 200, "outcome": 200, "post": 202}
    commands = asyncio.run(read_to_end(stack.broker.bootstrap, [Topic.PIPELINE_COMMAND]))
    published = {json.loads(r.value or b"{}")["correlation_id"] for r in commands}
    assert good["post"].json()["correlation_id"] in published  # the read reached past the refused POST
    assert refused_post not in published
