"""Correlation ids on every response and log line, the audit record, and the last-resort 500."""

import json
import logging
from typing import Any

import pytest

from gateway import observability
from gateway.context import client_address
from gateway.observability import JsonFormatter
from gateway.settings import GatewaySettings
from tests.unit.gateway.kit import Gateway, problem, running, settings

CID = "2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11"


def audit_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if '"gateway.audit"' in line]


async def test_every_client_interaction_is_audited(capsys: pytest.CaptureFixture[str]) -> None:
    async with running(settings(audit_log=True)) as gw:
        gw.state.register("b1")
        await gw.client.post(
            "/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp"}, headers={"X-Correlation-ID": CID}
        )
        await gw.client.get("/v1/batches/ghost/status")
        await gw.client.get("/healthz")  # probes are not audited
    records = audit_lines(capsys.readouterr().err)
    assert [r["status"] for r in records] == [202, 404]
    accepted, missing = records
    assert accepted["correlation_id"] == CID and accepted["user"] == "dev-user" and accepted["batch_id"] == "b1"
    assert (accepted["action"], accepted["pipeline"], accepted["outcome"]) == ("request_pipeline", "nlp", "ok")
    assert accepted["route"] == "/v1/batches/{batch_id}/pipelines" and accepted["latency_ms"] >= 0
    assert accepted["client"] == "127.0.0.1" and accepted["service"] == "api_gateway_service"
    assert (missing["action"], missing["outcome"]) == ("get_batch_status", "BATCH_NOT_FOUND")


async def test_unhandled_errors_become_a_500_problem_with_the_correlation_id(gw: Gateway) -> None:
    async def broken(batch_id: str) -> None:
        raise RuntimeError("boom")

    gw.state.batch_status = broken  # type: ignore[method-assign]
    response = await gw.client.get("/v1/batches/b1/status", headers={"X-Correlation-ID": CID})
    body = problem(response, 500, "INTERNAL_ERROR")
    assert body["correlation_id"] == CID and "boom" not in response.text


def test_log_lines_are_json_with_the_correlation_id() -> None:
    record = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.correlation_id = CID
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world" and line["correlation_id"] == CID and line["level"] == "WARNING"


def _scope(peer: str, forwarded: str | None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 1234), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.9", "203.0.113.5", "198.51.100.9"),  # untrusted peer: header ignored
        ("10.0.0.2", "203.0.113.5", "203.0.113.5"),  # trusted proxy: its client
        ("10.0.0.2", "1.2.3.4, 203.0.113.5", "203.0.113.5"),  # spoofed left entry ignored
        ("10.0.0.2", "203.0.113.5, 10.0.0.3", "203.0.113.5"),  # chain of trusted proxies skipped
        ("10.0.0.2", "garbage, 10.0.0.3", "10.0.0.3"),  # garbage: last vouched address
        ("10.0.0.2", None, "10.0.0.2"),
    ],
)
def test_client_address_trusts_forwarded_for_only_from_proxies(peer: str, forwarded: str | None, expected: str) -> None:
    trusted = GatewaySettings(trusted_proxies="10.0.0.0/8").trusted_proxies
    assert client_address(_scope(peer, forwarded), trusted) == expected


@pytest.mark.parametrize(
    "timestamp",
    [1764590400.0, 1764590400.0004994, 1764590400.0009996, 1764590400.9999996, 1764590459.123456, 1764590461.5],
)
def test_audit_timestamps_read_as_the_formatter_would_write_them(
    monkeypatch: pytest.MonkeyPatch, timestamp: float
) -> None:
    stamps = observability._UtcStamps()
    monkeypatch.setattr(observability, "time", lambda: timestamp - 1.25)
    stamps.now()  # a second formatted earlier must not leak into the next one
    monkeypatch.setattr(observability, "time", lambda: timestamp)
    assert stamps.now() == observability._utc(timestamp)
