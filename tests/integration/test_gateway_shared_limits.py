"""Two gateway replicas share one rate limit through Redis; an unreachable Redis lets requests through.

The Redis is a real `redis-server` when installed, else fakeredis on a real TCP socket (both in extra `[dev]`, so this
runs in CI); see tests/support/redis_server.py. Skipped, with the reason shown, only when neither can run.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from tests.support.gateway_process import GatewayProcess
from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer, unavailable_reason
from tests.support.stub_worker import StubWorker

REDIS_UNAVAILABLE = unavailable_reason()

pytestmark = [
    pytest.mark.http_surface,
    pytest.mark.integration,
    pytest.mark.skipif(REDIS_UNAVAILABLE is not None, reason=REDIS_UNAVAILABLE or ""),
]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_replicas_share_the_limit_and_fail_open(broker: Broker, tmp_path: Path, redis_server: RedisServer) -> None:
    env = {
        "CONDUCTOR_GATEWAY_RATELIMIT_STORAGE": redis_server.url,
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
            redis_server.stop()
            response = httpx.post(f"{replicas[0].url}/v1/batches/b1/pipelines", json={"requested_pipeline": "nlp"})
            assert response.status_code == 202  # storage down: let through, counted, logged
            assert "gateway_rate_limit_storage_errors_total 1.0" in httpx.get(f"{replicas[0].url}/metrics").text
        finally:
            for gw in replicas:
                gw.stop()
