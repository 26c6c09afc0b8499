"""GET status, GET one request's outcome, probes, metrics and the OpenAPI document."""

from datetime import UTC, datetime
from uuid import UUID

from contracts.pipelines import PipelineStep
from contracts.state import BatchStatusView, RequestOutcome
from gateway.errors import StateUnavailable
from tests.unit.gateway.kit import Gateway, problem

CID = UUID("2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11")
OUTCOME = f"/v1/batches/b1/pipelines/{CID}"
NLP = PipelineStep(
    name="nlp",
    service_name="nlp_service",
    event_type="huleedu.batch.nlp.initiate.command.v1",
    event_data_model="BatchServiceNLPInitiateCommandDataV1",
    depends_on=("spellcheck",),
)


async def test_status_returns_the_workers_view(gw: Gateway) -> None:
    response = await gw.client.get("/v1/batches/b1/status")
    assert response.status_code == 200
    assert BatchStatusView.model_validate(response.json()) == gw.state.batches["b1"]


async def test_status_of_an_unknown_batch_is_404(gw: Gateway) -> None:
    problem(await gw.client.get("/v1/batches/ghost/status"), 404, "BATCH_NOT_FOUND")


async def test_worker_unavailable_is_503_with_retry_after(gw: Gateway) -> None:
    gw.state.failure = StateUnavailable("The batch state service is unavailable.", headers={"Retry-After": "3"})
    response = await gw.client.get("/v1/batches/b1/status")
    problem(response, 503, "WORKER_UNAVAILABLE")
    assert response.headers["retry-after"] == "3"


async def test_outcome_is_pending_until_the_worker_records_one(gw: Gateway) -> None:
    body = (await gw.client.get(OUTCOME)).json()
    assert body["status"] == "pending" and body["correlation_id"] == str(CID) and body["steps"] == []


async def test_resolved_outcome_carries_the_steps(gw: Gateway) -> None:
    gw.state.outcomes[("b1", CID)] = RequestOutcome(
        client_correlation_id=CID,
        requested_pipeline="nlp",
        user_id="teacher-1",
        requested_at=datetime(2026, 11, 1, tzinfo=UTC),
        status="resolved",
        final_pipeline=["nlp"],
        pruned_steps=["spellcheck"],
        steps=[NLP],
        analysis_summary="spellcheck already complete",
    )
    body = (await gw.client.get(OUTCOME)).json()
    assert body["status"] == "resolved" and body["final_pipeline"] == ["nlp"]
    assert body["steps"][0]["event_type"] == "huleedu.batch.nlp.initiate.command.v1"
    assert body["pruned_steps"] == ["spellcheck"] and body["reason_code"] is None


async def test_failed_outcome_carries_the_reason(gw: Gateway) -> None:
    gw.state.outcomes[("b1", CID)] = RequestOutcome(
        client_correlation_id=CID,
        requested_pipeline="nlp",
        requested_at=datetime(2026, 11, 1, tzinfo=UTC),
        status="failed",
        reason_code="FORBIDDEN",
        message="batch belongs to another user",
    )
    body = (await gw.client.get(OUTCOME)).json()
    assert (body["status"], body["reason_code"]) == ("failed", "FORBIDDEN")


async def test_outcome_needs_a_uuid_and_a_known_batch(gw: Gateway) -> None:
    [error] = problem(await gw.client.get("/v1/batches/b1/pipelines/nope"), 422, "VALIDATION_ERROR")["errors"]
    assert (error["field"], error["location"]) == ("correlation_id", "path")
    problem(await gw.client.get(f"/v1/batches/ghost/pipelines/{CID}"), 404, "BATCH_NOT_FOUND")


async def test_liveness_and_readiness(gw: Gateway) -> None:
    assert (await gw.client.get("/healthz")).json() == {"status": "ok"}
    assert (await gw.client.get("/readyz")).json() == {"status": "ready", "checks": {"broker": "ok", "worker": "ok"}}
    gw.publisher.down = True
    gw.state.healthy = False
    body = problem(await gw.client.get("/readyz"), 503, "NOT_READY")
    assert body["checks"] == {"broker": "failing", "worker": "failing"}


async def test_metrics_count_requests_by_route_and_status(gw: Gateway) -> None:
    await gw.client.post("/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp"})
    await gw.client.get("/v1/batches/ghost/status")
    response = await gw.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'gateway_http_requests_total{method="POST",route="/v1/batches/{batch_id}/pipelines",status="202"} 1.0' in text
    )
    assert 'gateway_http_requests_total{method="GET",route="/v1/batches/{batch_id}/status",status="404"} 1.0' in text
    assert "gateway_http_request_duration_seconds_bucket" in text
    assert 'gateway_commands_published_total{pipeline="nlp"} 1.0' not in text  # the fake publisher counts nothing
    assert "b1" not in text and "ghost" not in text  # no batch ids in labels


async def test_openapi_documents_examples_and_every_error(gw: Gateway) -> None:
    spec = (await gw.client.get("/openapi.json")).json()
    post = spec["paths"]["/v1/batches/{batch_id}/pipelines"]["post"]
    assert set(post["responses"]) == {
        *("202", "400", "401", "403", "404", "413", "415", "422", "429", "500", "502", "503")
    }
    assert set(post["requestBody"]["content"]["application/json"]["examples"]) >= {"pipeline", "retry", "unknown"}
    for status, doc in post["responses"].items():
        if status != "202":
            content = doc["content"]["application/problem+json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"} and content["examples"], status
    assert post["security"] == []  # auth mode none: public (tests/unit/gateway/test_openapi_document.py: jwt)
    assert "Problem" in spec["components"]["schemas"] and "HTTPValidationError" not in str(spec)
    assert (await gw.client.get("/docs")).status_code == 200
    assert (await gw.client.get("/redoc")).status_code == 200
