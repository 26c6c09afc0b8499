"""The production profiles refuse what README says they refuse: `http://` CORS origins (gateway) and a missing
internal token (worker), on the settings objects and as real processes (an `error:` line and exit 2, no traceback).
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from streams.settings import WorkerSettings
from tests.support.tokens import SECRET

CONDUCTOR = Path(sys.executable).parent / "conductor"
REPO = Path(__file__).resolve().parents[2]
# A gateway production configuration that is safe in every other respect.
SAFE_GATEWAY: dict[str, Any] = {
    "environment": "production",
    "auth_mode": "jwt",
    "jwt_secret": SECRET,
    "jwt_issuer": "https://issuer.example",
    "jwt_audience": "batch-conductor",
    "internal_token": "shared-secret",
    "cors_origins": "https://app.example",
}


@pytest.fixture(autouse=True)
def _no_conductor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONDUCTOR_"):
            monkeypatch.delenv(name)


def test_a_safe_production_gateway_configuration_is_accepted() -> None:
    """The control: the refusals below are about the one unsafe value."""
    assert GatewaySettings(**SAFE_GATEWAY).cors_origins == ["https://app.example"]


@pytest.mark.parametrize(
    "origins",
    [
        "http://app.example",
        "https://app.example,http://app.example",
        "http://localhost:5173",
        "https://a.example,http://b.example:8080",
    ],
)
def test_production_gateway_refuses_http_cors_origins(origins: str) -> None:
    with pytest.raises(ValidationError, match="environment production: CORS origins must use https://"):
        GatewaySettings(**{**SAFE_GATEWAY, "cors_origins": origins})


def test_development_gateway_keeps_http_cors_origins() -> None:
    settings = GatewaySettings(
        **{**SAFE_GATEWAY, "environment": "development", "cors_origins": "http://localhost:5173"}
    )
    assert settings.cors_origins == ["http://localhost:5173"]


def test_production_worker_refuses_a_missing_internal_token() -> None:
    with pytest.raises(ValidationError, match="profile 'production' requires CONDUCTOR_INTERNAL_TOKEN"):
        WorkerSettings(profile="production")
    with pytest.raises(ValidationError, match="requires CONDUCTOR_INTERNAL_TOKEN"):
        WorkerSettings(profile="production", internal_token="")


def test_production_worker_with_a_token_and_local_worker_without_one_are_accepted() -> None:
    assert WorkerSettings(profile="production", internal_token="shared-secret").internal_token == "shared-secret"
    assert WorkerSettings(profile="local").internal_token == ""


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    return subprocess.run(
        [str(CONDUCTOR), *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_conductor_worker_profile_production_without_a_token_exits_with_a_clear_message(tmp_path: Path) -> None:
    # The broker address leads nowhere: the process must stop at its settings, before any connection.
    done = _run(
        "worker", "--profile", "production", "--broker", "kafka://127.0.0.1:9", "--data-dir", str(tmp_path / "data")
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert done.stderr.startswith("error: worker setting"), done.stderr[-2000:]
    assert "profile 'production' requires CONDUCTOR_INTERNAL_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


def test_conductor_gateway_production_with_http_cors_origins_exits_with_a_clear_message() -> None:
    env = {f"CONDUCTOR_GATEWAY_{k.upper()}": str(v) for k, v in SAFE_GATEWAY.items() if k != "internal_token"}
    env["CONDUCTOR_INTERNAL_TOKEN"] = SAFE_GATEWAY["internal_token"]
    env["CONDUCTOR_GATEWAY_CORS_ORIGINS"] = "http://app.example"
    done = _run("gateway", "--broker", "kafka://127.0.0.1:9", "--port", "9", **env)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "error: gateway setting" in done.stderr and "CORS origins must use https://" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stderr
