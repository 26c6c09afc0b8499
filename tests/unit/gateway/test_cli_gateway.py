"""`conductor gateway`: flags override env, invalid settings exit 2 with a readable message."""

from typing import Any

import pytest

import gateway.main
from conductor.cli import main
from gateway.settings import GatewaySettings


def test_flags_build_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[GatewaySettings] = []
    monkeypatch.setattr(gateway.main, "run", started.append)
    monkeypatch.setenv("CONDUCTOR_GATEWAY_PORT", "4999")
    monkeypatch.setenv("CONDUCTOR_GATEWAY_LOG_LEVEL", "DEBUG")
    argv = ["gateway", "--broker", "kafka://b:1", "--worker-url", "http://w:2", "--port", "4101", "--host", "0.0.0.0"]
    assert main(argv) == 0
    [config] = started
    assert (config.bootstrap_servers, config.worker_url, config.port, config.host) == (
        "b:1",
        "http://w:2",
        4101,
        "0.0.0.0",
    )
    assert config.log_level == "DEBUG"  # from env, no flag given


def test_invalid_settings_exit_2_without_echoing_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(config: Any) -> None:
        raise AssertionError("must not start")

    monkeypatch.setattr(gateway.main, "run", never)
    monkeypatch.setenv("CONDUCTOR_GATEWAY_JWT_SECRET", "tiny-secret")
    assert main(["gateway", "--auth-mode", "jwt"]) == 2
    err = capsys.readouterr().err
    assert "JWT_SECRET" in err and "tiny-secret" not in err
