"""Gateway unit-test kit: a fake publisher and worker, JWTs, the app on an ASGI client (no network)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI

from contracts.commands import ClientBatchPipelineRequestV1
from contracts.state import BatchStatusView, RequestOutcome
from gateway.errors import BrokerUnavailable
from gateway.main import create_app
from gateway.publisher import CommandEnvelope, command_envelope
from gateway.settings import GatewaySettings
from gateway.state_client import BatchOwner
from tests.support.tokens import AUDIENCE, ISSUER, SECRET

REPO = Path(__file__).resolve().parents[3]


class FakePublisher:
    """Records published commands; `down = True` makes it answer like an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[CommandEnvelope] = []
        self.down = False
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def check(self) -> bool:
        return not self.down

    async def publish(self, command: ClientBatchPipelineRequestV1) -> CommandEnvelope:
        if self.down:
            raise BrokerUnavailable("The broker did not acknowledge the command in time.", headers={"Retry-After": "3"})
        envelope = command_envelope(command)
        self.sent.append(envelope)
        return envelope


class FakeState:
    """Scripted worker views: `batches` (status views by id) and `outcomes` (by batch id and correlation id)."""

    def __init__(self) -> None:
        self.batches: dict[str, BatchStatusView] = {}
        self.outcomes: dict[tuple[str, UUID], RequestOutcome] = {}
        self.healthy = True
        self.failure: Exception | None = None

    def register(self, batch_id: str, user_id: str | None = "teacher-1") -> BatchStatusView:
        view = BatchStatusView(batch_id=batch_id, registered=True, user_id=user_id, expected_essay_count=2)
        self.batches[batch_id] = view
        return view

    async def batch_status(self, batch_id: str) -> BatchStatusView | None:
        if self.failure:
            raise self.failure
        return self.batches.get(batch_id)

    async def batch_owner(self, batch_id: str) -> BatchOwner | None:
        view = await self.batch_status(batch_id)
        return None if view is None else BatchOwner(view.user_id)

    async def request_outcome(self, batch_id: str, correlation_id: UUID) -> RequestOutcome | None:
        if self.failure:
            raise self.failure
        return self.outcomes.get((batch_id, correlation_id))

    async def check(self) -> bool:
        return self.healthy

    async def aclose(self) -> None:
        pass


def settings(**overrides: Any) -> GatewaySettings:
    """Return gateway settings for tests (the repo's pipelines.yaml; env ignored for what is given)."""
    values: dict[str, Any] = {"pipelines_file": REPO / "pipelines.yaml", "audit_log": False}
    values.update(overrides)
    return GatewaySettings(**values)


def jwt_settings(**overrides: Any) -> GatewaySettings:
    """Return settings for auth mode jwt with the test HMAC secret."""
    values: dict[str, Any] = {
        "auth_mode": "jwt",
        "jwt_secret": SECRET,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
    }
    values.update(overrides)
    return settings(**values)


class Gateway:
    """An app under test with its fakes and an httpx client on the ASGI app."""

    def __init__(self, app: FastAPI, publisher: FakePublisher, state: FakeState, client: httpx.AsyncClient) -> None:
        self.app, self.publisher, self.state, self.client = app, publisher, state, client


@asynccontextmanager
async def running(config: GatewaySettings | None = None) -> AsyncIterator[Gateway]:
    """Run the app's lifespan and yield it with its fakes and a client."""
    publisher, state = FakePublisher(), FakeState()
    app = create_app(config or settings(), publisher=publisher, state_client=state)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(app, publisher, state, client)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert `response` is a problem document with this status and code; return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert body["instance"] == f"urn:uuid:{body['correlation_id']}"
    assert isinstance(body["errors"], list) and body["title"] and body["type"].startswith("urn:")
    return body
