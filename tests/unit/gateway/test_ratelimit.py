"""Rate limits: a burst, then 429 with Retry-After and RateLimit headers; per client, per endpoint."""

from tests.support.tokens import bearer, token
from tests.unit.gateway.kit import jwt_settings, problem, running, settings

URL = "/v1/batches/b1/pipelines"
BODY = {"requested_pipeline": "nlp"}


async def test_burst_then_429_with_headers() -> None:
    async with running(settings(rate_limit_request_pipeline="3/second;100/minute")) as gw:
        gw.state.register("b1")
        answers = [await gw.client.post(URL, json=BODY) for _ in range(4)]
        assert [r.status_code for r in answers[:3]] == [202, 202, 202]
        assert [r.headers["ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
        assert answers[0].headers["ratelimit-limit"] == "3"
        assert answers[0].headers["ratelimit-policy"] == "3;w=1, 100;w=60"
        refused = answers[3]
        body = problem(refused, 429, "RATE_LIMITED")
        retry_after = int(refused.headers["retry-after"])
        assert retry_after in (1, 2)  # the 1 s window's sliding counter frees a slot within two seconds
        assert body["retry_after"] == retry_after
        assert refused.headers["ratelimit-reset"] == str(retry_after)
        assert refused.headers["ratelimit-remaining"] == "0"
        assert len(gw.publisher.sent) == 3
        assert 'gateway_rate_limited_total{endpoint="request_pipeline"} 1.0' in (await gw.client.get("/metrics")).text


async def test_the_sustained_window_binds_when_it_is_the_tighter_one() -> None:
    async with running(settings(rate_limit_request_pipeline="5/second;3/minute")) as gw:
        gw.state.register("b1")
        accepted = [await gw.client.post(URL, json=BODY) for _ in range(3)]
        assert [r.status_code for r in accepted] == [202] * 3
        assert (accepted[-1].headers["ratelimit-limit"], accepted[-1].headers["ratelimit-remaining"]) == ("3", "0")
        refused = await gw.client.post(URL, json=BODY)
        problem(refused, 429, "RATE_LIMITED")
        assert int(refused.headers["retry-after"]) > 1 and refused.headers["ratelimit-limit"] == "3"


async def test_limits_are_per_user_in_jwt_mode() -> None:
    async with running(jwt_settings(rate_limit_request_pipeline="2/second")) as gw:
        gw.state.register("b1", user_id=None)  # a batch without owner: admins may act on it
        alice = bearer(token("alice", roles=["admin"]))
        bob = bearer(token("bob", roles=["admin"]))
        assert [(await gw.client.post(URL, json=BODY, headers=alice)).status_code for _ in range(3)] == [202, 202, 429]
        assert (await gw.client.post(URL, json=BODY, headers=bob)).status_code == 202


async def test_limits_are_per_endpoint() -> None:
    async with running(settings(rate_limit_request_pipeline="1/second", rate_limit_batch_status="5/second")) as gw:
        gw.state.register("b1")
        assert (await gw.client.post(URL, json=BODY)).status_code == 202
        assert (await gw.client.post(URL, json=BODY)).status_code == 429
        assert (await gw.client.get("/v1/batches/b1/status")).status_code == 200


async def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    # The ASGI test client connects from 127.0.0.1.
    async with running(settings(rate_limit_request_pipeline="1/second", trusted_proxies="127.0.0.1")) as gw:
        gw.state.register("b1")
        for client in ("203.0.113.1", "203.0.113.2"):
            headers = {"X-Forwarded-For": f"198.51.100.7, {client}"}
            assert (await gw.client.post(URL, json=BODY, headers=headers)).status_code == 202
    async with running(settings(rate_limit_request_pipeline="1/second")) as gw:  # no trusted proxy: header ignored
        gw.state.register("b1")
        codes = [
            (await gw.client.post(URL, json=BODY, headers={"X-Forwarded-For": ip})).status_code
            for ip in ("203.0.113.1", "203.0.113.2")
        ]
        assert codes == [202, 429]


async def test_rate_limiting_can_be_switched_off() -> None:
    async with running(settings(rate_limit_request_pipeline="1/minute", rate_limit_enabled=False)) as gw:
        gw.state.register("b1")
        responses = [await gw.client.post(URL, json=BODY) for _ in range(3)]
        assert [r.status_code for r in responses] == [202] * 3
        assert "ratelimit-limit" not in responses[0].headers
