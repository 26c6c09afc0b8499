"""Issue 7, scenario 7: attacks on a real gateway process over a real socket.

Forged, stale and misdirected tokens (HS256 and RS256 gateways), other users' batches, disallowed CORS origins on
actual requests, spoofed X-Forwarded-For, oversize bodies (declared and chunked) and concurrent bursts against the
rate limits. The unit tests (tests/unit/gateway/test_security.py) check the same rules in-process; here they are
checked end to end, and every refused POST is checked to have published nothing.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conductor.broker import free_port
from conductor.brokers import Broker
from contracts.topics import Topic
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import end_offsets, read_to_end
from tests.support.processes import wait_until
from tests.support.stub_worker import StubWorker
from tests.support.tokens import AUDIENCE, ISSUER, JWT_ENV, SECRET, bearer, token

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.http_surface]

BURST_LIMIT = 20  # per minute: a window no burst can outlast
BURST_SIZE = 60
XFF_LIMIT = 5
OWNER, OTHER = "teacher-1", "teacher-2"
BODY = {"requested_pipeline": "nlp"}


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


RS_KEY, ATTACKER_KEY = _rsa(), _rsa()
RS_PUBLIC_PEM = (
    RS_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


class Gateways:
    """The gateways under attack, sharing one stub worker (b1 owned by OWNER, b2 by OTHER) and the session broker."""

    def __init__(self, broker: Broker, stub: StubWorker, workdir: Path) -> None:
        self.broker, self.stub, self.workdir = broker, stub, workdir
        self.processes: list[GatewayProcess] = []
        self.refused_posts: set[str] = set()  # correlation ids of POSTs that were refused
        self.accepted_posts: set[str] = set()  # ... and of POSTs that were accepted (202), the control

    def start(self, **env: str) -> GatewayProcess:
        process = GatewayProcess(self.broker.url, self.workdir, free_port(), self.stub.url, **env)
        self.processes.append(process)
        return process.start_and_wait()


@pytest.fixture(scope="module")
def gateways(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    with StubWorker() as stub:
        stub.register("b1", user_id=OWNER)
        stub.register("b2", user_id=OTHER)
        running = Gateways(broker, stub, tmp_path_factory.mktemp("gateway-attacks"))
        try:
            yield running
        finally:
            for process in running.processes:
                process.stop()


@pytest.fixture(scope="module")
def hs(gateways: Gateways) -> GatewayProcess:
    """Auth jwt HS256; POSTs and status reads limited to BURST_LIMIT per minute per subject."""
    return gateways.start(
        **JWT_ENV,
        CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE=f"{BURST_LIMIT}/minute",
        CONDUCTOR_GATEWAY_RATE_LIMIT_BATCH_STATUS=f"{BURST_LIMIT}/minute",
    )


@pytest.fixture(scope="module")
def rs(gateways: Gateways) -> GatewayProcess:
    """Auth jwt RS256 (a public key: the configuration HS/RS key confusion targets)."""
    return gateways.start(
        CONDUCTOR_GATEWAY_AUTH_MODE="jwt",
        CONDUCTOR_GATEWAY_JWT_ALGORITHMS="RS256",
        CONDUCTOR_GATEWAY_JWT_PUBLIC_KEY=RS_PUBLIC_PEM,
        CONDUCTOR_GATEWAY_JWT_ISSUER=ISSUER,
        CONDUCTOR_GATEWAY_JWT_AUDIENCE=AUDIENCE,
    )


# ---- forged, stale and misdirected tokens ---------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(sub: str = OWNER, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now, **extra}


def _hmac_token(secret: bytes, claims: dict[str, Any], alg: str = "HS256") -> str:
    """Sign by hand (PyJWT refuses a PEM as an HMAC key, an attacker does not)."""
    segments = [_b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()), _b64(json.dumps(claims).encode())]
    signature = hmac.new(secret, ".".join(segments).encode(), hashlib.sha256).digest()
    return ".".join([*segments, _b64(signature)])


def _tampered(original: str, **changes: Any) -> str:
    """Change the payload of a validly signed token and keep its signature."""
    header, payload, signature = original.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join([header, _b64(json.dumps({**claims, **changes}).encode()), signature])


def _unsigned() -> str:
    return jwt.encode(_claims(), None, algorithm="none")


def _embedded_jwk() -> str:
    """Sign with the attacker's key and carry the attacker's public key in the header (CVE-2018-0114 style)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_KEY.public_key()))
    return jwt.encode(_claims(), ATTACKER_KEY, algorithm="RS256", headers={"jwk": jwk})


def _rs(sub: str = OWNER, **claims: Any) -> str:
    return token(sub, key=RS_KEY, algorithm="RS256", **claims)


def _header(value: str) -> dict[str, str]:
    return {"Authorization": value}


Case = tuple[str, str, Callable[[], dict[str, str]], int, str]
# (name, gateway, headers, expected status, expected code); each is sent as a POST on b1 and a status read of b1.
AUTH_CASES: list[Case] = [
    ("no token", "hs", dict, 401, "AUTHENTICATION_REQUIRED"),
    ("basic scheme", "hs", lambda: _header("Basic dGVhY2hlci0xOnB3"), 401, "AUTHENTICATION_REQUIRED"),
    ("bearer without token", "hs", lambda: _header("Bearer"), 401, "AUTHENTICATION_REQUIRED"),
    ("token without scheme", "hs", lambda: _header(token(OWNER)), 401, "AUTHENTICATION_REQUIRED"),
    ("malformed token", "hs", lambda: bearer("not.a.jwt"), 401, "INVALID_TOKEN"),
    ("oversize garbage token", "hs", lambda: bearer("A" * 6000), 401, "INVALID_TOKEN"),
    ("expired", "hs", lambda: bearer(token(OWNER, exp=int(time.time()) - 120)), 401, "INVALID_TOKEN"),
    ("not yet valid (nbf)", "hs", lambda: bearer(token(OWNER, nbf=int(time.time()) + 600)), 401, "INVALID_TOKEN"),
    ("no exp", "hs", lambda: bearer(token(OWNER, exp=None)), 401, "INVALID_TOKEN"),
    ("wrong secret", "hs", lambda: bearer(token(OWNER, key="x" * 48)), 401, "INVALID_TOKEN"),
    ("wrong issuer", "hs", lambda: bearer(token(OWNER, iss="https://evil.example")), 401, "INVALID_TOKEN"),
    ("wrong audience", "hs", lambda: bearer(token(OWNER, aud="another-service")), 401, "INVALID_TOKEN"),
    ("alg none", "hs", lambda: bearer(_unsigned()), 401, "INVALID_TOKEN"),
    ("HS512 not allowed", "hs", lambda: bearer(token(OWNER, key=SECRET * 2, algorithm="HS512")), 401, "INVALID_TOKEN"),
    ("tampered sub", "hs", lambda: bearer(_tampered(token("mallory"), sub=OWNER)), 401, "INVALID_TOKEN"),
    ("tampered roles", "hs", lambda: bearer(_tampered(token(OTHER), roles=["admin"])), 401, "INVALID_TOKEN"),
    ("another user's batch", "hs", lambda: bearer(token(OTHER)), 403, "FORBIDDEN"),
    (
        "RS: HS256 signed with the public key",
        "rs",
        lambda: bearer(_hmac_token(RS_PUBLIC_PEM.encode(), _claims())),
        401,
        "INVALID_TOKEN",
    ),
    ("RS: alg none", "rs", lambda: bearer(_unsigned()), 401, "INVALID_TOKEN"),
    ("RS: another key", "rs", lambda: bearer(token(OWNER, key=ATTACKER_KEY, algorithm="RS256")), 401, "INVALID_TOKEN"),
    ("RS: embedded attacker jwk", "rs", lambda: bearer(_embedded_jwk()), 401, "INVALID_TOKEN"),
    ("RS: tampered sub", "rs", lambda: bearer(_tampered(_rs(sub="mallory"), sub=OWNER)), 401, "INVALID_TOKEN"),
    ("RS: expired", "rs", lambda: bearer(_rs(exp=int(time.time()) - 120)), 401, "INVALID_TOKEN"),
    ("RS: another user's batch", "rs", lambda: bearer(token(OTHER, key=RS_KEY, algorithm="RS256")), 403, "FORBIDDEN"),
]


@pytest.mark.parametrize(("name", "which", "headers", "status", "code"), AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
def test_bad_credentials_are_refused_end_to_end(
    request: pytest.FixtureRequest,
    gateways: Gateways,
    name: str,
    which: str,
    headers: Callable[[], dict[str, str]],
    status: int,
    code: str,
) -> None:
    gateway: GatewayProcess = request.getfixturevalue(which)
    cid = str(uuid.uuid4())
    with gateway.client() as client:
        posted = client.post("/v1/batches/b1/pipelines", json=BODY, headers={**headers(), "X-Correlation-ID": cid})
        read = client.get("/v1/batches/b1/status", headers=headers())
        outcome = client.get(f"/v1/batches/b1/pipelines/{uuid.uuid4()}", headers=headers())
    gateways.refused_posts.add(cid)
    for response in (posted, read, outcome):
        assert response.status_code == status, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["status"], body["code"]) == (status, code)
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert "eyJ" not in response.text, "a token is echoed back"


def test_the_same_gateways_accept_the_genuine_tokens(
    hs: GatewayProcess, rs: GatewayProcess, gateways: Gateways
) -> None:
    """The control for the cases above: the refusals are about the credentials, not the gateways."""
    for gateway, good in ((hs, token(OWNER)), (rs, _rs())):
        with gateway.client() as client:
            accepted = client.post("/v1/batches/b1/pipelines", json=BODY, headers=bearer(good))
            assert accepted.status_code == 202
            gateways.accepted_posts.add(accepted.json()["correlation_id"])
            assert client.get("/v1/batches/b1/status", headers=bearer(good)).status_code == 200


# ---- CORS, forwarded addresses, body size --------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://localhost:5173.evil.example",
        "http://localhost:51730",
        "https://localhost:5173",
        "HTTP://LOCALHOST:5173",
        "http://localhost:5173/",
    ],
)
def test_a_disallowed_origin_gets_no_cors_grant_on_actual_requests(hs: GatewayProcess, origin: str) -> None:
    with hs.client() as client:
        read = client.get("/v1/pipelines", headers={"Origin": origin, **bearer(token(OWNER))})
        posted = client.post("/v1/batches/b1/pipelines", json=BODY, headers={"Origin": origin, **bearer(token(OWNER))})
        allowed = client.get("/v1/pipelines", headers={"Origin": "http://localhost:5173", **bearer(token(OWNER))})
    for response in (read, posted):
        assert "access-control-allow-origin" not in response.headers, origin
        assert "access-control-allow-credentials" not in response.headers, origin
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"


def _burst_statuses(gateway: GatewayProcess, count: int, forwarded: Callable[[int], str]) -> list[int]:
    with gateway.client() as client:
        return [
            client.get("/v1/batches/b1/status", headers={"X-Forwarded-For": forwarded(i)}).status_code
            for i in range(count)
        ]


def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_rate_limit_key(
    gateways: Gateways,
) -> None:
    limits = {"CONDUCTOR_GATEWAY_RATE_LIMIT_BATCH_STATUS": f"{XFF_LIMIT}/minute"}
    # The peer (127.0.0.1) is not a trusted proxy: its X-Forwarded-For is the client's own claim.
    untrusted = gateways.start(CONDUCTOR_GATEWAY_TRUSTED_PROXIES="10.0.0.0/8", **limits)
    # Stay clear of a minute boundary: the sliding window's weighted count would admit one more across it.
    wait_until(lambda: time.time() % 60 < 50, 12, "not the end of a minute", interval=0.2)
    spoofed = _burst_statuses(untrusted, XFF_LIMIT + 5, lambda i: f"203.0.113.{i}, 10.0.0.{i}")
    assert spoofed == [200] * XFF_LIMIT + [429] * 5
    wait_until(lambda: "gateway.audit" in untrusted.logs(), 5, "audit records written")
    clients = {r["client"] for r in untrusted.log_records() if r.get("logger") == "gateway.audit"}
    assert clients == {"127.0.0.1"}
    # Control: when the peer is a trusted proxy the same header does name the client, one allowance each.
    trusted = gateways.start(CONDUCTOR_GATEWAY_TRUSTED_PROXIES="127.0.0.1/32", **limits)
    wait_until(lambda: time.time() % 60 < 50, 12, "not the end of a minute", interval=0.2)
    assert _burst_statuses(trusted, XFF_LIMIT + 5, lambda i: f"203.0.113.{i}") == [200] * (XFF_LIMIT + 5)


def test_oversize_bodies_are_refused_with_413(hs: GatewayProcess) -> None:
    auth = {**bearer(token(OWNER)), "Content-Type": "application/json"}
    big = json.dumps({"requested_pipeline": "nlp", "prompt_payload": {"text": "x" * 70_000}}).encode()
    fits = json.dumps({"requested_pipeline": "nlp", "prompt_payload": {"text": "x" * 60_000}}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    with hs.client() as client:
        declared = client.post("/v1/batches/b1/pipelines", content=big, headers=auth)
        chunked = client.post("/v1/batches/b1/pipelines", content=chunks(), headers=auth)
        accepted = client.post("/v1/batches/b1/pipelines", content=fits, headers=auth)
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert "content-length" not in chunked.request.headers
    assert accepted.status_code == 202


# ---- concurrent bursts ---------------------------------------------------------------------------------------


def _send(client: Any, method: str, path: str, sub: str) -> Any:
    """Send the POST or the status read of the burst tests (a coroutine for an AsyncClient)."""
    return client.request(method, path, json=BODY if method == "POST" else None, headers=bearer(token(sub)))


async def _burst(gateway: GatewayProcess, method: str, path: str, sub: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False, timeout=15.0) as client:
        return list(await asyncio.gather(*(_send(client, method, path, sub) for _ in range(BURST_SIZE))))


BURSTS = [("POST", "/v1/batches/{b}/pipelines", 202), ("GET", "/v1/batches/{b}/status", 200)]


@pytest.mark.parametrize(("method", "path", "admitted"), BURSTS, ids=["POST", "GET"])
def test_a_concurrent_burst_admits_exactly_the_limit_per_client(
    hs: GatewayProcess, gateways: Gateways, method: str, path: str, admitted: int
) -> None:
    # Fresh subjects (no earlier hits); stay clear of a minute boundary so the burst sees one window.
    wait_until(lambda: time.time() % 60 < 50, 12, "not the end of a minute", interval=0.2)
    first, second = f"burst-{uuid.uuid4().hex[:6]}", f"burst-{uuid.uuid4().hex[:6]}"
    for sub in (first, second):
        gateways.stub.register(f"{sub}-batch", user_id=sub)
    started = time.monotonic()
    responses = asyncio.run(_burst(hs, method, path.format(b=f"{first}-batch"), first))
    elapsed = time.monotonic() - started
    statuses = Counter(r.status_code for r in responses)
    if method == "POST":
        for response in responses:
            posts = gateways.accepted_posts if response.status_code == 202 else gateways.refused_posts
            posts.add(response.json()["correlation_id"])
    assert statuses == {admitted: BURST_LIMIT, 429: BURST_SIZE - BURST_LIMIT}, statuses
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "RATE_LIMITED" and int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
    # Per-client isolation: another subject, right after, still has its whole allowance.
    with hs.client() as client:
        other = _send(client, method, path.format(b=f"{second}-batch"), second)
    assert other.status_code == admitted
    print(f"\nburst {method}: {BURST_SIZE} concurrent in {elapsed:.2f}s -> {dict(statuses)}; other client {admitted}")


def test_no_refused_post_published_anything(gateways: Gateways, broker: Broker) -> None:
    """Runs last: the command topic, read to the end offsets taken after the attacks, holds none of the refused
    POSTs' correlation ids, and every accepted one (the control: the read reached past the attacks)."""
    assert len(gateways.refused_posts) >= len(AUTH_CASES) + BURST_SIZE - BURST_LIMIT
    assert len(gateways.accepted_posts) >= 2 + BURST_LIMIT
    ends = asyncio.run(end_offsets(broker.bootstrap, [Topic.PIPELINE_COMMAND]))
    records = asyncio.run(read_to_end(broker.bootstrap, [Topic.PIPELINE_COMMAND], ends))
    published = {json.loads(r.value or b"{}").get("correlation_id") for r in records}
    assert gateways.accepted_posts <= published, f"{len(gateways.accepted_posts - published)} accepted not read"
    assert not published & gateways.refused_posts
