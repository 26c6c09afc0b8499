"""The gateway's one settings object: read once from `CONDUCTOR_*` environment variables, unsafe values refused."""

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal

from limits import RateLimitItem, parse_many
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_HMAC_SECRET_BYTES = 32

# Rate-limited endpoints (route names); each has a `rate_limit_<name>` setting.
RATE_LIMITED_ENDPOINTS = ("request_pipeline", "batch_status", "request_outcome", "list_pipelines", "batch_events")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(value: object) -> object:
    """Accept a comma-separated string (friendly in env files) as well as a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class GatewaySettings(BaseSettings):
    """Everything the gateway process is configured by (env `CONDUCTOR_GATEWAY_*` plus the shared `CONDUCTOR_*`)."""

    model_config = SettingsConfigDict(env_prefix="CONDUCTOR_GATEWAY_", populate_by_name=True, extra="ignore")

    # --- shared with the worker (no gateway prefix)
    broker: str = Field("kafka://127.0.0.1:9092", validation_alias=AliasChoices("CONDUCTOR_BROKER", "broker"))
    internal_token: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("CONDUCTOR_INTERNAL_TOKEN", "internal_token")
    )
    topic_partitions: int = Field(
        4, ge=1, validation_alias=AliasChoices("CONDUCTOR_TOPIC_PARTITIONS", "topic_partitions")
    )
    topic_replication_factor: int = Field(
        1, ge=1, validation_alias=AliasChoices("CONDUCTOR_TOPIC_REPLICATION_FACTOR", "topic_replication_factor")
    )
    pipelines_file: Path = Field(
        Path("pipelines.yaml"), validation_alias=AliasChoices("CONDUCTOR_PIPELINES_FILE", "pipelines_file")
    )

    # --- serving
    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(4001, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    audit_log: bool = True
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    cors_origins: Annotated[list[str], NoDecode] = [
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
    ]
    trusted_proxies: Annotated[list[IpNetwork], NoDecode] = []
    # The built reference page (clients/web/dist), served at /app/ when set (`conductor dev` sets it).
    web_dir: Path | None = None

    # --- the worker's table views
    worker_url: str = "http://127.0.0.1:4002"
    worker_timeout_seconds: float = Field(1.5, gt=0, le=30)
    worker_attempts: int = Field(3, ge=1, le=10)
    worker_backoff_seconds: float = Field(0.2, ge=0, le=5)
    owner_cache_seconds: float = Field(30.0, ge=0)
    owner_cache_size: int = Field(10_000, ge=1)

    # --- publishing
    publish_timeout_ms: int = Field(1500, ge=100, le=60_000)  # a frozen broker gets a 503 well within 2 s
    enable_idempotence: bool = False  # the embedded broker (Tansu) refuses InitProducerId; turn on for Apache Kafka
    linger_ms: int = Field(0, ge=0, le=1000)
    retry_after_seconds: int = Field(3, ge=1, le=3600)

    # --- authentication
    auth_mode: Literal["none", "jwt"] = "none"
    dev_user: str = Field("dev-user", min_length=1, max_length=255)
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]
    jwt_secret: SecretStr = SecretStr("")
    jwt_public_key: str = ""
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_leeway_seconds: int = Field(10, ge=0, le=300)
    jwt_roles_claim: str = "roles"
    admin_role: str = "admin"

    # --- rate limiting (`limits` notation; the shortest window is the burst allowance, the longest the sustained rate)
    rate_limit_enabled: bool = True
    ratelimit_storage: str = "memory://"
    rate_limit_strategy: Literal["sliding-window-counter", "fixed-window", "moving-window"] = "sliding-window-counter"
    rate_limit_request_pipeline: str = "10/second;120/minute"
    rate_limit_batch_status: str = "20/second;600/minute"
    rate_limit_request_outcome: str = "20/second;600/minute"
    rate_limit_list_pipelines: str = "10/second;300/minute"
    # Opening a stream (and getting a stream ticket); an open stream itself is capped by the stream settings below.
    rate_limit_batch_events: str = "5/second;120/minute"

    # --- the event stream (GET /v1/batches/{batch_id}/events)
    stream_max_per_client: int = Field(10, ge=1, description="open streams per client (429 beyond)")
    stream_max: int = Field(2000, ge=1, description="open streams per gateway process (503 beyond)")
    stream_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    stream_poll_seconds: float = Field(25.0, gt=0, le=60)  # long-poll wait on the worker's changes view
    stream_max_seconds: float = Field(900.0, ge=0.1)  # a stream ends after this long; the client resumes
    stream_ticket_seconds: int = Field(60, ge=5, le=3600)
    # Signs stream tickets; set the same value on every replica (unset: a random key per process).
    stream_ticket_secret: SecretStr = SecretStr("")

    @field_validator("cors_origins", "jwt_algorithms", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split(value)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                raise ValueError("'*' is not allowed (credentials are on): list the frontend origins explicitly")
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(f"CORS origin {origin!r} must look like https://host[:port] (no path, no slash)")
        return origins

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        items = _split(value)
        if isinstance(items, list):
            return [ipaddress.ip_network(str(item), strict=False) for item in items]
        return items

    @field_validator("jwt_algorithms")
    @classmethod
    def _algorithms(cls, algorithms: list[str]) -> list[str]:
        if not algorithms:
            raise ValueError("at least one JWT algorithm is needed")
        for name in algorithms:
            if name.lower() == "none":
                raise ValueError("JWT algorithm 'none' is refused: unsigned tokens are never accepted")
            if name not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS:
                raise ValueError(f"unsupported JWT algorithm {name!r}")
        families = {name in HMAC_ALGORITHMS for name in algorithms}
        if len(families) > 1:
            # Mixing HMAC and public-key algorithms invites key-confusion attacks.
            raise ValueError("do not mix HMAC (HS*) and public-key JWT algorithms in one allow-list")
        return algorithms

    @field_validator(*(f"rate_limit_{name}" for name in RATE_LIMITED_ENDPOINTS))
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit in `limits` notation (e.g. '10/second;120/minute'): {exc}") from None
        return value

    @field_validator("ratelimit_storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].removeprefix("async+")
        if "://" not in value or scheme not in {"memory", "redis", "rediss", "redis+unix", "valkey", "memcached"}:
            raise ValueError("rate-limit storage must be memory:// or a redis:// (or valkey://, memcached://) URI")
        return value

    @model_validator(mode="after")
    def _safe(self) -> "GatewaySettings":
        if self.auth_mode == "jwt":
            if self.uses_hmac:
                secret = self.jwt_secret.get_secret_value().encode()
                if len(secret) < MIN_HMAC_SECRET_BYTES:
                    raise ValueError(
                        f"auth mode jwt with {self.jwt_algorithms}: CONDUCTOR_GATEWAY_JWT_SECRET must be set "
                        f"(at least {MIN_HMAC_SECRET_BYTES} bytes)"
                    )
            elif not (self.jwt_public_key.strip() or self.jwt_public_key_file):
                raise ValueError(
                    f"auth mode jwt with {self.jwt_algorithms}: set CONDUCTOR_GATEWAY_JWT_PUBLIC_KEY (PEM) "
                    "or CONDUCTOR_GATEWAY_JWT_PUBLIC_KEY_FILE"
                )
            if not self.jwt_issuer or not self.jwt_audience:
                raise ValueError(
                    "auth mode jwt: CONDUCTOR_GATEWAY_JWT_ISSUER and CONDUCTOR_GATEWAY_JWT_AUDIENCE are required"
                )
        if self.environment == "production":
            if self.auth_mode == "none":
                raise ValueError(
                    "environment production: auth mode 'none' is refused; use CONDUCTOR_GATEWAY_AUTH_MODE=jwt"
                )
            if not self.internal_token.get_secret_value():
                raise ValueError("environment production: CONDUCTOR_INTERNAL_TOKEN must be set")
            if any(o.startswith("http://") for o in self.cors_origins):
                raise ValueError("environment production: CORS origins must use https://")
        return self

    @property
    def uses_hmac(self) -> bool:
        """Return whether tokens are verified with a shared secret (HS*) rather than a public key."""
        return self.jwt_algorithms[0] in HMAC_ALGORITHMS

    @property
    def bootstrap_servers(self) -> str:
        """Return the broker list as Kafka clients want it: `host:port[,host:port]`."""
        parts = [p.strip() for p in self.broker.replace(";", ",").split(",") if p.strip()]
        return ",".join(p.split("://", 1)[-1].rstrip("/") for p in parts)

    def rate_limits(self) -> dict[str, list[RateLimitItem]]:
        """Return each rate-limited endpoint's windows, shortest first."""
        return {
            name: sorted(parse_many(getattr(self, f"rate_limit_{name}")), key=lambda item: item.get_expiry())
            for name in RATE_LIMITED_ENDPOINTS
        }
