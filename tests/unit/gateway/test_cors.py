"""CORS: allow-listed origins get credentials and preflights; others get nothing (or a refused preflight)."""

from tests.unit.gateway.kit import Gateway, problem

ALLOWED = "http://localhost:3000"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, authorization, x-correlation-id",
}


async def test_preflight_from_an_allowed_origin(gw: Gateway) -> None:
    response = await gw.client.options("/v1/batches/b1/pipelines", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-correlation-id" in response.headers["access-control-allow-headers"]
    assert "Origin" in response.headers["vary"]


async def test_preflight_from_another_origin_is_refused(gw: Gateway) -> None:
    response = await gw.client.options(
        "/v1/batches/b1/pipelines", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    problem(response, 403, "CORS_REFUSED")
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_asking_for_an_unlisted_method_or_header_is_refused(gw: Gateway) -> None:
    for asked in (
        {"Access-Control-Request-Method": "DELETE"},
        {**PREFLIGHT, "Access-Control-Request-Headers": "x-admin"},
    ):
        response = await gw.client.options("/v1/batches/b1/pipelines", headers={"Origin": ALLOWED, **asked})
        problem(response, 403, "CORS_REFUSED")


async def test_actual_request_from_an_allowed_origin_exposes_headers(gw: Gateway) -> None:
    response = await gw.client.post(
        "/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp"}, headers={"Origin": ALLOWED}
    )
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = response.headers["access-control-expose-headers"]
    assert "X-Correlation-ID" in exposed and "Retry-After" in exposed and "RateLimit-Remaining" in exposed


async def test_actual_request_from_another_origin_gets_no_cors_headers(gw: Gateway) -> None:
    response = await gw.client.get("/v1/batches/b1/status", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


async def test_the_gateways_own_early_answers_carry_cors_headers_too(gw: Gateway) -> None:
    big = {"requested_pipeline": "nlp", "prompt_payload": {"text": "x" * 70_000}}
    response = await gw.client.post("/v1/batches/b1/pipelines", json=big, headers={"Origin": ALLOWED})
    problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert response.headers["access-control-allow-origin"] == ALLOWED
