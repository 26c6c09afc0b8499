"""Who is calling (auth mode `none` or JWT bearer tokens) and whether they may act on a batch."""

import logging
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.errors import AuthenticationRequired, Forbidden, InvalidToken
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.security")

REALM = 'Bearer realm="batch-conductor"'
_MAX_SUB = 255
_CACHE_SIZE = 10_000
_CACHE_SECONDS = 300.0
_now = time.time

# PyJWT exception -> what the client is told (never the token itself).
_TOKEN_ERRORS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "The bearer token has expired."),
    (jwt.ImmatureSignatureError, "The bearer token is not valid yet."),
    (jwt.InvalidIssuerError, "The bearer token was issued by an untrusted issuer."),
    (jwt.InvalidAudienceError, "The bearer token is meant for another audience."),
    (jwt.InvalidAlgorithmError, "The bearer token's signing algorithm is not allowed."),
    (jwt.InvalidSignatureError, "The bearer token's signature does not verify."),
    (jwt.MissingRequiredClaimError, "The bearer token lacks a required claim (exp, iss, aud and sub are required)."),
    (jwt.DecodeError, "The bearer token is malformed."),
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: `sub` becomes the command's `user_id`; `authenticated` is False in auth mode `none`."""

    sub: str
    roles: frozenset[str] = frozenset()
    authenticated: bool = True


class Authenticator:
    """Turn a bearer token into a Principal, and decide who may act on which batch."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.auth_mode == "jwt"
        self.algorithms = list(settings.jwt_algorithms)
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.roles_claim = settings.jwt_roles_claim.split(".")
        self.admin_role = settings.admin_role
        self.dev_principal = Principal(settings.dev_user, frozenset({settings.admin_role}), authenticated=False)
        self.key: Any = None
        # Verified tokens, until they expire (at most _CACHE_SECONDS): a browser sends the same token on every
        # request, and verifying it each time was a fifth of the gateway's throughput in auth mode jwt (measured).
        self._verified: dict[str, tuple[float, Principal]] = {}
        if self.enabled:
            self.key = self._load_key(settings)

    @staticmethod
    def _load_key(settings: GatewaySettings) -> Any:
        """Load the verification key once (a parsed public key, or the HMAC secret bytes)."""
        if settings.uses_hmac:
            return settings.jwt_secret.get_secret_value().encode()
        pem = settings.jwt_public_key
        if settings.jwt_public_key_file is not None:
            pem = settings.jwt_public_key_file.read_text(encoding="utf-8")
        try:
            return load_pem_public_key(pem.replace("\\n", "\n").encode())
        except ValueError as exc:
            raise ValueError(f"CONDUCTOR_GATEWAY_JWT_PUBLIC_KEY is not a PEM public key: {exc}") from None

    def authenticate(self, authorization: bytes | None) -> Principal:
        """Return the caller for an `Authorization` header value, or raise AuthenticationRequired / InvalidToken."""
        if not self.enabled:
            return self.dev_principal
        scheme, _, raw = (authorization or b"").decode("latin-1").strip().partition(" ")
        token = raw.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationRequired(
                "Send a bearer token: Authorization: Bearer <JWT>.", headers={"WWW-Authenticate": REALM}
            )
        cached = self._verified.get(token)
        if cached is not None and _now() < cached[0]:
            return cached[1]
        principal, expires = self._verify(token)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first
        self._verified[token] = (min(expires, _now() + _CACHE_SECONDS), principal)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        """Check signature, algorithm, exp, iss, aud and sub; return the caller and the token's expiry."""
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            detail = next((text for kind, text in _TOKEN_ERRORS if isinstance(exc, kind)), "The token is invalid.")
            log.info("token refused: %s", type(exc).__name__)
            raise self._invalid(detail) from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= _MAX_SUB:
            raise self._invalid(f"The token's sub claim must be a string of 1-{_MAX_SUB} characters.")
        return Principal(sub=sub, roles=self._roles(claims), authenticated=True), float(claims["exp"])

    @staticmethod
    def _invalid(detail: str) -> InvalidToken:
        challenge = f'{REALM}, error="invalid_token", error_description="{detail}"'
        return InvalidToken(detail, headers={"WWW-Authenticate": challenge})

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        value: Any = claims
        for part in self.roles_claim:  # a dotted claim path, e.g. realm_access.roles
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(v for v in value if isinstance(v, str))
        return frozenset()

    def is_admin(self, principal: Principal) -> bool:
        """Return whether the caller holds the admin role."""
        return self.admin_role in principal.roles

    def authorize(self, principal: Principal, owner: str | None, *, act: bool = False) -> None:
        """Raise Forbidden (403) unless the caller may read (or, with `act`, request pipelines for) the batch.

        The owner may do both. An admin may read any batch, but act only on batches without owner: the worker
        refuses a command whose `user_id` is not the owner's, so letting it through would only fail later.
        Auth mode none allows everything.
        """
        if not self.enabled or (owner is not None and owner == principal.sub):
            return
        if self.is_admin(principal) and (owner is None or not act):
            return
        if owner is None:
            raise Forbidden("This batch has no registered owner; only an admin may act on it.")
        raise Forbidden("This batch is registered to another user.")
