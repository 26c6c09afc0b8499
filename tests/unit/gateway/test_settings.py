"""Settings: env names, list parsing, and unsafe values refused at start-up."""

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from tests.support.tokens import SECRET


def test_env_names_shared_and_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_BROKER", "kafka://k1:9092,kafka://k2:9092")
    monkeypatch.setenv("CONDUCTOR_INTERNAL_TOKEN", "s3cret")
    monkeypatch.setenv("CONDUCTOR_TOPIC_PARTITIONS", "8")
    monkeypatch.setenv("CONDUCTOR_GATEWAY_PORT", "4101")
    monkeypatch.setenv("CONDUCTOR_GATEWAY_WORKER_URL", "http://worker:4002")
    monkeypatch.setenv("CONDUCTOR_GATEWAY_CORS_ORIGINS", "https://app.example, http://localhost:3000")
    monkeypatch.setenv("CONDUCTOR_GATEWAY_RATELIMIT_STORAGE", "redis://cache:6379/0")
    config = GatewaySettings()
    assert config.bootstrap_servers == "k1:9092,k2:9092"
    assert config.internal_token.get_secret_value() == "s3cret" and config.topic_partitions == 8
    assert (config.port, config.worker_url) == (4101, "http://worker:4002")
    assert config.cors_origins == ["https://app.example", "http://localhost:3000"]
    assert config.ratelimit_storage == "redis://cache:6379/0"


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUCTOR_BROKER", "kafka://env:9092")
    assert GatewaySettings(broker="flag:9093").bootstrap_servers == "flag:9093"


def test_defaults_are_the_development_ones() -> None:
    config = GatewaySettings()
    assert (config.port, config.auth_mode, config.dev_user, config.ratelimit_storage) == (
        4001,
        "none",
        "dev-user",
        "memory://",
    )
    assert config.bootstrap_servers == "127.0.0.1:9092" and config.enable_idempotence is False
    assert config.rate_limits()["request_pipeline"][0].get_expiry() == 1  # burst window first


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"auth_mode": "jwt", "jwt_issuer": "i", "jwt_audience": "a"}, "JWT_SECRET must be set"),
        ({"auth_mode": "jwt", "jwt_secret": "short", "jwt_issuer": "i", "jwt_audience": "a"}, "at least 32 bytes"),
        ({"auth_mode": "jwt", "jwt_secret": SECRET}, "ISSUER and CONDUCTOR_GATEWAY_JWT_AUDIENCE are required"),
        ({"auth_mode": "jwt", "jwt_algorithms": "RS256", "jwt_issuer": "i", "jwt_audience": "a"}, "PUBLIC_KEY"),
        ({"jwt_algorithms": "none"}, "'none' is refused"),
        ({"jwt_algorithms": "HS256,RS256"}, "do not mix"),
        ({"cors_origins": "*"}, "not allowed"),
        ({"cors_origins": "localhost:3000"}, "must look like"),
        ({"rate_limit_batch_status": "lots"}, "limits"),
        ({"ratelimit_storage": "sqlite:///x"}, "memory://"),
        ({"environment": "production"}, "auth mode 'none' is refused"),
        (
            {
                "environment": "production",
                "auth_mode": "jwt",
                "jwt_secret": SECRET,
                "jwt_issuer": "i",
                "jwt_audience": "a",
            },
            "INTERNAL_TOKEN",
        ),
    ],
)
def test_unsafe_or_invalid_values_are_refused(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        GatewaySettings(**values)
