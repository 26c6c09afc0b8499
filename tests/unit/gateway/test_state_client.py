"""The worker views client over httpx.MockTransport: mapping, retries, internal token, owner cache."""

from collections.abc import Callable
from uuid import UUID

import httpx
import pytest

from gateway.errors import StateUnavailable, WorkerError
from gateway.metrics import GatewayMetrics
from gateway.state_client import WorkerStateClient
from tests.unit.gateway.kit import settings

CID = UUID("2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11")
VIEW = {"batch_id": "b1", "registered": True, "user_id": "teacher-1", "expected_essay_count": 2, "essay_count": 2}


def client(handler: Callable[[httpx.Request], httpx.Response], **overrides: object) -> WorkerStateClient:
    config = settings(worker_backoff_seconds=0.0, **overrides)
    return WorkerStateClient(config, GatewayMetrics(), transport=httpx.MockTransport(handler))


async def test_status_owner_and_outcome_are_read_and_parsed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/batches/b1":
            return httpx.Response(200, json=VIEW)
        return httpx.Response(404, json={"detail": "no outcome for this request (yet)"})

    state = client(handler)
    view = await state.batch_status("b1")
    assert view is not None and view.user_id == "teacher-1"
    assert await state.request_outcome("b1", CID) is None
    assert seen == ["/batches/b1", f"/batches/b1/requests/{CID}"]


async def test_unknown_or_unregistered_batches_are_none() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/batches/seen":
            return httpx.Response(200, json={**VIEW, "batch_id": "seen", "registered": False, "user_id": None})
        return httpx.Response(404, json={"detail": "unknown batch"})

    state = client(handler)
    assert await state.batch_status("ghost") is None
    assert await state.batch_owner("seen") is None


async def test_owner_is_cached_for_registered_batches_only() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=VIEW) if request.url.path == "/batches/b1" else httpx.Response(404)

    state = client(handler)
    assert [(await state.batch_owner("b1")).user_id for _ in range(3)] == ["teacher-1"] * 3  # type: ignore[union-attr]
    assert calls == 1
    await state.batch_owner("ghost")
    await state.batch_owner("ghost")
    assert calls == 3
    uncached = client(handler, owner_cache_seconds=0)
    await uncached.batch_owner("b1")
    await uncached.batch_owner("b1")
    assert calls == 5


async def test_rebalancing_503_is_retried_then_answered() -> None:
    answers = [httpx.Response(503), httpx.Response(503), httpx.Response(200, json=VIEW)]
    state = client(lambda request: answers.pop(0))
    assert (await state.batch_status("b1")) is not None and not answers


async def test_retries_are_bounded_then_state_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    state = client(handler, worker_attempts=3)
    with pytest.raises(StateUnavailable) as caught:
        await state.batch_status("b1")
    assert calls == 3 and caught.value.headers["Retry-After"] == "3"


async def test_internal_token_is_sent_and_its_refusal_is_a_worker_error() -> None:
    tokens: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers.get("x-internal-token"))
        return httpx.Response(401, json={"detail": "missing or wrong X-Internal-Token header"})

    with pytest.raises(WorkerError, match="internal token"):
        await client(handler, internal_token="shared-secret").batch_status("b1")
    assert tokens == ["shared-secret"]
    assert "x-internal-token" not in client(lambda r: httpx.Response(404))._client.headers  # empty token: no header


@pytest.mark.parametrize(
    "answer", [httpx.Response(500), httpx.Response(200, content=b"{not json"), httpx.Response(200, json={"x": 1})]
)
async def test_unusable_answers_are_worker_errors(answer: httpx.Response) -> None:
    with pytest.raises(WorkerError):
        await client(lambda request: answer).batch_status("b1")


async def test_health_check() -> None:
    assert await client(lambda r: httpx.Response(200, json={"status": "ok"})).check()
    assert not await client(lambda r: httpx.Response(503, json={"status": "starting"})).check()
