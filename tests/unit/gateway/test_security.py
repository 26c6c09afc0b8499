"""JWT authentication (accept / refuse) and batch ownership, through the routes."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

import gateway.security
from gateway.security import Authenticator
from tests.support.tokens import AUDIENCE, ISSUER, SECRET, bearer, token
from tests.unit.gateway.kit import Gateway, jwt_settings, problem, running

URL = "/v1/batches/b1/pipelines"
CID = "2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11"
BODY = {"requested_pipeline": "nlp"}


async def test_valid_token_sub_becomes_the_commands_user_id(jwt_gw: Gateway) -> None:
    response = await jwt_gw.client.post(URL, json=BODY, headers=bearer(token("teacher-1")))
    assert response.status_code == 202
    assert jwt_gw.publisher.sent[-1].data.user_id == "teacher-1"


async def test_missing_token_is_401_with_a_bearer_challenge(jwt_gw: Gateway) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = await jwt_gw.client.post(URL, json=BODY, headers=headers)
        problem(response, 401, "AUTHENTICATION_REQUIRED")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert not jwt_gw.publisher.sent


def _unsigned() -> str:
    return jwt.encode({"sub": "teacher-1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, None, "none")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token(exp=int(time.time()) - 120), "expired"),
        (lambda: token(iss="https://evil.example"), "untrusted issuer"),
        (lambda: token(aud="someone-else"), "another audience"),
        (lambda: token(key="a-different-secret-that-is-also-long-enough!!"), "signature"),
        (lambda: token(exp=None), "required claim"),
        (lambda: token(sub=None), "required claim"),
        (lambda: token(iss=None), "required claim"),
        (lambda: token(key=SECRET * 2, algorithm="HS512"), "algorithm"),
        (_unsigned, "algorithm"),
        (lambda: "not.a.jwt", "malformed"),
        (lambda: token(nbf=int(time.time()) + 600), "not valid yet"),
        (lambda: token(sub=""), "sub claim"),
    ],
)
async def test_bad_tokens_are_refused_with_a_reason(jwt_gw: Gateway, make: Any, reason: str) -> None:
    response = await jwt_gw.client.post(URL, json=BODY, headers=bearer(make()))
    body = problem(response, 401, "INVALID_TOKEN")
    assert reason in body["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert not jwt_gw.publisher.sent


async def test_rs256_public_key_mode(rsa_keys: tuple[Any, str]) -> None:
    private, public_pem = rsa_keys
    config = jwt_settings(jwt_algorithms="RS256", jwt_secret="", jwt_public_key=public_pem)
    async with running(config) as gateway:
        gateway.state.register("b1")
        good = token(key=private, algorithm="RS256")
        assert (await gateway.client.post(URL, json=BODY, headers=bearer(good))).status_code == 202
        # Key confusion: an HS256 token whose HMAC key is the (public) PEM must not pass.
        problem(
            await gateway.client.post(URL, json=BODY, headers=bearer(_hs256_with(public_pem))), 401, "INVALID_TOKEN"
        )


def _hs256_with(secret: str) -> str:
    """Forge an HS256 token by hand (PyJWT itself refuses a PEM as HMAC key)."""
    claims = {"sub": "teacher-1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}
    segments = [_b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), _b64(json.dumps(claims).encode())]
    signature = hmac.new(secret.encode(), ".".join(segments).encode(), hashlib.sha256).digest()
    return ".".join([*segments, _b64(signature)])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_another_users_batch_is_forbidden(jwt_gw: Gateway) -> None:
    headers = bearer(token("teacher-2"))
    problem(await jwt_gw.client.post(URL, json=BODY, headers=headers), 403, "FORBIDDEN")
    problem(await jwt_gw.client.get("/v1/batches/b1/status", headers=headers), 403, "FORBIDDEN")
    outcome = "/v1/batches/b1/pipelines/2f0a8d6e-6a43-4b8b-9a53-0d4c7b7a0c11"
    problem(await jwt_gw.client.get(outcome, headers=headers), 403, "FORBIDDEN")
    assert not jwt_gw.publisher.sent


async def test_admin_reads_any_batch_but_acts_only_on_batches_without_owner(jwt_gw: Gateway) -> None:
    headers = bearer(token("ops-1", roles=["admin"]))
    assert (await jwt_gw.client.get("/v1/batches/b1/status", headers=headers)).status_code == 200
    assert (await jwt_gw.client.get(f"/v1/batches/b1/pipelines/{CID}", headers=headers)).status_code == 200
    # The worker would refuse a command whose user_id is not the owner's: refuse it here already.
    problem(await jwt_gw.client.post(URL, json=BODY, headers=headers), 403, "FORBIDDEN")
    assert (await jwt_gw.client.post("/v1/batches/orphan/pipelines", json=BODY, headers=headers)).status_code == 202
    assert jwt_gw.publisher.sent[-1].data.user_id == "ops-1"


async def test_batch_without_owner_is_admin_only(jwt_gw: Gateway) -> None:
    teacher = bearer(token("teacher-1"))
    problem(await jwt_gw.client.get("/v1/batches/orphan/status", headers=teacher), 403, "FORBIDDEN")
    problem(await jwt_gw.client.post("/v1/batches/orphan/pipelines", json=BODY, headers=teacher), 403, "FORBIDDEN")
    admin = bearer(token("ops", roles=["admin"]))
    assert (await jwt_gw.client.get("/v1/batches/orphan/status", headers=admin)).status_code == 200


async def test_roles_claim_is_configurable_and_may_be_nested() -> None:
    async with running(jwt_settings(jwt_roles_claim="realm_access.roles")) as gateway:
        gateway.state.register("b1")
        nested = token("ops", realm_access={"roles": ["admin"]})
        flat = token("ops", roles=["admin"])
        assert (await gateway.client.get("/v1/batches/b1/status", headers=bearer(nested))).status_code == 200
        problem(await gateway.client.get("/v1/batches/b1/status", headers=bearer(flat)), 403, "FORBIDDEN")


async def test_auth_mode_none_allows_everything_as_the_dev_user(gw: Gateway) -> None:
    gw.state.register("someone-elses", user_id="teacher-9")
    response = await gw.client.post("/v1/batches/someone-elses/pipelines", json=BODY)
    assert response.status_code == 202
    assert gw.publisher.sent[-1].data.user_id == "dev-user"


def test_secret_is_never_in_the_settings_repr() -> None:
    assert SECRET not in repr(jwt_settings())


def test_verified_tokens_are_cached_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator(jwt_settings())
    decoded: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: decoded.append(a[0]) or real_decode(*a, **kw))
    exp = int(time.time()) + 120
    header = f"Bearer {token('teacher-1', exp=exp)}".encode()
    first, second = auth.authenticate(header), auth.authenticate(header)
    assert first == second and first.sub == "teacher-1" and len(decoded) == 1
    monkeypatch.setattr(gateway.security, "_now", lambda: exp + 1.0)  # past its exp: not served from the cache
    auth.authenticate(header)
    assert len(decoded) == 2
