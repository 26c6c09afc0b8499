"""JWTs for gateway tests: one test issuer, audience and HMAC secret."""

import time
from typing import Any

import jwt

SECRET = "unit-test-secret-that-is-long-enough-0123456789"
ISSUER = "https://id.example.test"
AUDIENCE = "batch-conductor"

# The gateway environment for auth mode jwt with these values.
JWT_ENV = {
    "CONDUCTOR_GATEWAY_AUTH_MODE": "jwt",
    "CONDUCTOR_GATEWAY_JWT_SECRET": SECRET,
    "CONDUCTOR_GATEWAY_JWT_ISSUER": ISSUER,
    "CONDUCTOR_GATEWAY_JWT_AUDIENCE": AUDIENCE,
}


def token(sub: str | None = "teacher-1", *, key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """Return a signed JWT; claims default to a valid one (set a claim to None to drop it)."""
    now = int(time.time())
    # An hour: tokens made at import time must outlive a slow test session.
    payload: dict[str, Any] = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 3600, "iat": now}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    """Return an Authorization header."""
    return {"Authorization": f"Bearer {value}"}
