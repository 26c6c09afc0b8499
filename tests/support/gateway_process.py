"""Start the gateway as a real `conductor gateway` subprocess (uvicorn on a real socket) and wait until it answers."""

import json
from pathlib import Path
from typing import Any

import httpx

from conductor.broker import free_port
from conductor.brokers import Broker
from tests.support.processes import REPO, ServiceProcess, http_ok, wait_until


class GatewayProcess(ServiceProcess):
    """A real `conductor gateway` on the given broker and worker URL, with its own port and log file."""

    def __init__(self, broker_url: str, workdir: Path, port: int, worker_url: str, **env: str) -> None:
        self.port = port
        super().__init__(
            ["gateway", "--broker", broker_url, "--worker-url", worker_url, "--port", str(port)],
            {"CONDUCTOR_PIPELINES_FILE": str(REPO / "pipelines.yaml"), "PYTHONUNBUFFERED": "1", **env},
            workdir / f"gateway-{port}.log",
        )

    @property
    def url(self) -> str:
        """Return the gateway's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        """Return an httpx client for the gateway (environment proxies ignored)."""
        return httpx.Client(base_url=self.url, trust_env=False, timeout=kwargs.pop("timeout", 15.0), **kwargs)

    def logs(self) -> str:
        """Return everything the gateway logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        """Return the gateway's JSON log lines, parsed (other lines skipped)."""
        records = []
        for line in self.logs().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def producer_connected(self) -> bool:
        """Return whether the gateway's producer is connected (its `gateway_broker_connected` gauge is 1)."""
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=2.0, trust_env=False).text
        except httpx.HTTPError:
            return False
        return "gateway_broker_connected 1.0" in text

    def start_and_wait(self, timeout: float = 60.0, broker: bool = True) -> "GatewayProcess":
        """Start, wait for `/healthz` and (unless `broker=False`) for the producer's connection."""
        self.start()
        self.wait_ready(f"{self.url}/healthz", timeout)
        if broker:
            try:
                wait_until(self.producer_connected, timeout, "gateway producer connected")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- log ---\n{self.log_tail()}") from None
        return self

    def ready(self) -> bool:
        """Return whether `/readyz` answers 200."""
        return http_ok(f"{self.url}/readyz")

    def __enter__(self) -> "GatewayProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_gateway(
    broker: Broker,
    tmp_path: Path,
    *,
    worker_url: str = "http://127.0.0.1:9",
    wait_broker: bool = True,
    **env: str,
) -> GatewayProcess:
    """Return a started gateway (a context manager that stops it); `env` adds CONDUCTOR_* variables."""
    gateway = GatewayProcess(broker.url, tmp_path, free_port(), worker_url, **env)
    return gateway.start_and_wait(broker=wait_broker)
