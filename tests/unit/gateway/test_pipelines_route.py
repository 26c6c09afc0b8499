"""POST /v1/batches/{id}/pipelines: validation, problem documents, the published command, 202."""

import json
from typing import Any
from uuid import UUID

import pytest

from contracts.envelope import GATEWAY_SERVICE
from contracts.topics import Topic
from gateway.errors import WorkerError
from tests.unit.gateway.kit import Gateway, problem

URL = "/v1/batches/b1/pipelines"
CID = "2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11"


async def test_accepted_request_publishes_the_exact_command(gw: Gateway) -> None:
    response = await gw.client.post(URL, json={"requested_pipeline": "ai_feedback"}, headers={"X-Correlation-ID": CID})
    assert response.status_code == 202
    assert response.json() == {
        "status": "accepted",
        "batch_id": "b1",
        "requested_pipeline": "ai_feedback",
        "correlation_id": CID,
        "status_url": f"/v1/batches/b1/pipelines/{CID}",
        "batch_status_url": "/v1/batches/b1/status",
    }
    assert response.headers["x-correlation-id"] == CID
    assert response.headers["location"] == f"/v1/batches/b1/pipelines/{CID}"
    [envelope] = gw.publisher.sent
    wire = json.loads(envelope.model_dump_json())
    assert wire["event_type"] == Topic.PIPELINE_COMMAND == "huleedu.commands.batch.pipeline.v1"
    assert wire["source_service"] == GATEWAY_SERVICE == "api_gateway_service"
    assert wire["schema_version"] == 1 and wire["correlation_id"] == CID
    assert wire["event_timestamp"].endswith("Z")
    UUID(wire["event_id"])
    assert wire["data"] == {
        "batch_id": "b1",
        "requested_pipeline": "ai_feedback",
        "client_correlation_id": CID,
        "user_id": "dev-user",
        "is_retry": False,
        "retry_reason": None,
        "prompt_payload": None,
    }


async def test_correlation_id_is_minted_when_absent_or_not_a_uuid(gw: Gateway) -> None:
    for headers in ({}, {"X-Correlation-ID": "<not-a-uuid>"}):
        response = await gw.client.post(URL, json={"requested_pipeline": "nlp"}, headers=headers)
        assert response.status_code == 202
        minted = response.headers["x-correlation-id"]
        assert UUID(minted).version == 4 and response.json()["correlation_id"] == minted
        assert str(gw.publisher.sent[-1].correlation_id) == minted


async def test_retry_fields_and_matching_body_batch_id_pass_through(gw: Gateway) -> None:
    body = {"requested_pipeline": "nlp", "is_retry": True, "retry_reason": "NLP restarted", "batch_id": "b1"}
    assert (await gw.client.post(URL, json=body)).status_code == 202
    data = gw.publisher.sent[-1].data
    assert (data.is_retry, data.retry_reason) == (True, "NLP restarted")


async def test_a_bare_step_name_is_accepted(gw: Gateway) -> None:
    assert (await gw.client.post(URL, json={"requested_pipeline": "cj_assessment"})).status_code == 202


async def test_unknown_pipeline_is_422_listing_the_valid_names(gw: Gateway) -> None:
    body = problem(await gw.client.post(URL, json={"requested_pipeline": "spelcheck"}), 422, "UNKNOWN_PIPELINE")
    assert body["valid_pipelines"] == ["spellcheck", "nlp", "cj_assessment", "ai_feedback", "comprehensive"]
    assert "cj_assessment" in body["valid_steps"]
    [error] = body["errors"]
    assert error["field"] == "requested_pipeline" and "comprehensive" in error["message"]
    assert not gw.publisher.sent


async def test_body_and_path_batch_ids_must_match(gw: Gateway) -> None:
    response = await gw.client.post(URL, json={"requested_pipeline": "nlp", "batch_id": "other"})
    problem(response, 400, "BATCH_ID_MISMATCH")
    assert not gw.publisher.sent


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({}, "requested_pipeline", "missing"),
        ({"requested_pipeline": ""}, "requested_pipeline", "string_too_short"),
        ({"requested_pipeline": "x" * 101}, "requested_pipeline", "string_too_long"),
        ({"requested_pipeline": "nlp", "retry_reason": "r" * 501}, "retry_reason", "string_too_long"),
        ({"requested_pipeline": "nlp", "is_retry": "perhaps"}, "is_retry", "bool_parsing"),
        ({"requested_pipeline": "nlp", "colour": "red"}, "colour", "extra_forbidden"),
        ({"requested_pipeline": 7}, "requested_pipeline", "string_type"),
    ],
)
async def test_invalid_bodies_get_per_field_errors(gw: Gateway, body: dict[str, Any], field: str, kind: str) -> None:
    errors = problem(await gw.client.post(URL, json=body), 422, "VALIDATION_ERROR")["errors"]
    assert any(e["field"] == field and e["type"] == kind and e["location"] == "body" for e in errors), errors
    assert all(e["message"] for e in errors)


@pytest.mark.parametrize("batch_id", ["-starts-with-dash", "has space", "x" * 256, "semi;colon", "ütf"])
async def test_batch_id_pattern_and_length_are_checked(gw: Gateway, batch_id: str) -> None:
    response = await gw.client.post(f"/v1/batches/{batch_id}/pipelines", json={"requested_pipeline": "nlp"})
    [error] = problem(response, 422, "VALIDATION_ERROR")["errors"]
    assert (error["field"], error["location"]) == ("batch_id", "path")


async def test_error_text_never_reflects_raw_markup(gw: Gateway) -> None:
    evil = "<script>alert(1)</script>"
    unknown = problem(await gw.client.post(URL, json={"requested_pipeline": evil}), 422, "UNKNOWN_PIPELINE")
    extra = problem(await gw.client.post(URL, json={"requested_pipeline": "nlp", evil: 1}), 422, "VALIDATION_ERROR")
    for text in (json.dumps(unknown), json.dumps(extra)):
        assert "<script>" not in text and "&lt;script&gt;" in text


async def test_malformed_json_is_400_and_non_json_is_415(gw: Gateway) -> None:
    headers = {"Content-Type": "application/json"}
    problem(await gw.client.post(URL, content=b'{"requested_pipeline": ', headers=headers), 400, "MALFORMED_JSON")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    problem(await gw.client.post(URL, content=b"requested_pipeline=nlp", headers=form), 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_oversized_bodies_are_refused_before_parsing(gw: Gateway) -> None:
    big = {"requested_pipeline": "nlp", "prompt_payload": {"text": "x" * 70_000}}
    problem(await gw.client.post(URL, json=big), 413, "PAYLOAD_TOO_LARGE")

    async def chunks():  # no Content-Length: counted as it streams
        yield b'{"requested_pipeline": "nlp", "prompt_payload": {"text": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}}'

    chunked = await gw.client.post(URL, content=chunks(), headers={"Content-Type": "application/json"})
    problem(chunked, 413, "PAYLOAD_TOO_LARGE")
    assert not gw.publisher.sent


async def test_unknown_batch_is_404(gw: Gateway) -> None:
    problem(
        await gw.client.post("/v1/batches/nope/pipelines", json={"requested_pipeline": "nlp"}), 404, "BATCH_NOT_FOUND"
    )


async def test_broker_down_is_503_with_retry_after(gw: Gateway) -> None:
    gw.publisher.down = True
    response = await gw.client.post(URL, json={"requested_pipeline": "nlp"})
    problem(response, 503, "BROKER_UNAVAILABLE")
    assert response.headers["retry-after"] == "3"


async def test_worker_errors_become_502(gw: Gateway) -> None:
    gw.state.failure = WorkerError("The batch state service answered HTTP 500.")
    problem(await gw.client.post(URL, json={"requested_pipeline": "nlp"}), 502, "WORKER_ERROR")


async def test_wrong_method_and_unknown_route_are_problems(gw: Gateway) -> None:
    response = await gw.client.delete(URL)
    problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"
    problem(await gw.client.get("/v2/anything"), 404, "NOT_FOUND")


async def test_catalog_lists_pipelines_in_run_order(gw: Gateway) -> None:
    body = (await gw.client.get("/v1/pipelines")).json()
    by_name = {p["name"]: p["steps"] for p in body["pipelines"]}
    assert by_name["ai_feedback"] == ["spellcheck", "nlp", "ai_feedback"]
    assert body["steps"] == ["spellcheck", "nlp", "cj_assessment", "ai_feedback"]
