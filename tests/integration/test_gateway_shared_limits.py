"""Two gateway replicas share one rate limit through Redis; an unreachable Redis lets requests through.

Optional feature (extra `[redis]` and a `redis-server` binary): skipped, with the reason shown, when either is missing.
"""

import importlib.util
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conductor.broker import EmbeddedBroker, free_port, wait_for_port
from tests.support.gateway_process import GatewayProcess
from tests.support.processes import wait_until
from tests.support.stub_worker import StubWorker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not installed"),
    pytest.mark.skipif(importlib.util.find_spec("redis") is None, reason="extra [redis] not installed"),
]


@pytest.fixture
def redis_url() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 10, server)
        yield f"redis://127.0.0.1:{port}/0", server
    finally:
        server.terminate()
        server.wait(5)


def test_replicas_share_the_limit_and_fail_open(
    broker: EmbeddedBroker, tmp_path: Path, redis_url: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, server = redis_url
    env = {
        "CONDUCTOR_GATEWAY_RATELIMIT_STORAGE": url,
        "CONDUCTOR_GATEWAY_RATE_LIMIT_REQUEST_PIPELINE": "3/second;100/minute",
    }
    with StubWorker() as stub:
        stub.register("b1")
        replicas = [GatewayProcess(broker.url, tmp_path, free_port(), stub.url, **env).start_and_wait() for _ in (1, 2)]
        try:
            wait_until(lambda: time.time() % 1 < 0.3, 2, "start of a second", interval=0.01)
            codes = [
                httpx.post(f"{gw.url}/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp"}).status_code
                for gw in (*replicas, *replicas)
            ]
            assert codes == [202, 202, 202, 429]  # one allowance of 3 across both replicas
            server.terminate()
            server.wait(5)
            response = httpx.post(f"{replicas[0].url}/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp"})
            assert response.status_code == 202  # storage down: let through, counted, logged
            assert "gateway_rate_limit_storage_errors_total 1.0" in httpx.get(f"{replicas[0].url}/metrics").text
        finally:
            for gw in replicas:
                gw.stop()
