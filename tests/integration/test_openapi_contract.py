"""Issue 12, item 2: `schemathesis run --checks all`, every phase (examples, coverage, fuzzing, stateful), passes with
0 failures against a real gateway + worker + broker, in auth mode `none` and in auth mode `jwt`.

This runs the schemathesis command line itself, as a user would, on the document the gateway serves. What the
run is given, and why:
- a seeded batch (registered to the caller) that half the generated `batch_id`s name (a schemathesis dictionary),
  so that generated and linked requests reach real outcomes: 202s, resolved requests, statuses, event streams;
- in mode `jwt`, a valid bearer token for the seeded batch's owner (the `ignored_auth` check sends none or a
  broken one and expects 401);
- one hook (tests/support/schemathesis_hooks.py): a body `batch_id` must equal the path's, a rule JSON Schema
  cannot state;
- gateway settings: rate limits off (a fuzzer is a flood) and streams that end after 0.2 s (an event stream never
  ends by itself; schemathesis reads each response to its end, then checks every event against the schema).
"""

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conductor.broker import EmbeddedBroker, free_port
from tests.support import messages as m
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import produce
from tests.support.processes import REPO, WorkerProcess, wait_until
from tests.support.tokens import JWT_ENV, token

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.http_surface]

MAX_EXAMPLES = 50  # fuzzing examples per operation; the coverage and stateful phases add their own cases
SEEDED = {"none": ("contract-seeded-open", "dev-user"), "jwt": ("contract-seeded-jwt", "teacher-contract")}
GATEWAY_ENV = {
    "CONDUCTOR_GATEWAY_RATE_LIMIT_ENABLED": "false",
    "CONDUCTOR_GATEWAY_STREAM_MAX_SECONDS": "0.2",
    "CONDUCTOR_GATEWAY_STREAM_MAX_PER_CLIENT": "100",
}
CASES: dict[str, int] = {}


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    workdir = tmp_path_factory.mktemp("contract")
    with WorkerProcess(broker.url, workdir, free_port()) as running:
        for batch, owner in SEEDED.values():
            msg = m.registered(batch, [f"{batch}-e1", f"{batch}-e2"], user_id=owner)
            asyncio.run(produce(broker.bootstrap, [(msg["event_type"], batch.encode(), m.as_bytes(msg))]))
        for batch, _ in SEEDED.values():
            url = f"{running.web_url}/batches/{batch}"
            wait_until(lambda url=url: httpx.get(url, trust_env=False).status_code == 200, 30, f"{url} seeded")
        yield running


def worker_metrics(worker: WorkerProcess) -> str:
    return httpx.get(f"{worker.web_url}/metrics", trust_env=False).text


def _config(path: Path, batch: str) -> Path:
    path.write_text(
        f"""
[generation]
max-examples = {MAX_EXAMPLES}

[dictionaries.seeded]
values = ["{batch}"]

[parameters]
"path.batch_id" = {{ dictionary = "seeded", probability = 0.5 }}
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("auth_mode", ["none", "jwt"])
def test_schemathesis_checks_all_phases_pass(
    auth_mode: str, broker: EmbeddedBroker, worker: WorkerProcess, tmp_path: Path
) -> None:
    batch, owner = SEEDED[auth_mode]
    env = {**GATEWAY_ENV, **(JWT_ENV if auth_mode == "jwt" else {})}
    with GatewayProcess(broker.url, tmp_path, free_port(), worker.web_url, **env) as gateway:
        gateway.start_and_wait()
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(_config(tmp_path / "schemathesis.toml", batch)),
            "run",
            f"{gateway.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
        ]
        if auth_mode == "jwt":
            command += ["-H", f"Authorization: Bearer {token(owner, exp=int(time.time()) + 3600)}"]
        hooks_env = {"SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks", "PYTHONPATH": str(REPO)}
        run = subprocess.run(
            command, cwd=tmp_path, env={**os.environ, **hooks_env}, capture_output=True, text=True, timeout=900
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0 and "No issues found" in output, output[-6000:]
        for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
            assert f"✅ {phase}" in output, output[-3000:]
        links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", output)
        assert links and int(links.group(1)) >= 2, output[-3000:]
        # The stateful and fuzzing phases reached real outcomes through the seeded batch: accepted commands,
        # their outcomes read back, statuses and event streams of a real batch.
        metrics = httpx.get(f"{gateway.url}/metrics", trust_env=False).text
        for route, status in (
            ("/v1/batches/{batch_id}/pipelines", "202"),
            ("/v1/batches/{batch_id}/pipelines/{correlation_id}", "200"),
            ("/v1/batches/{batch_id}/status", "200"),
            ("/v1/batches/{batch_id}/events", "200"),
            ("/v1/batches/{batch_id}/events/ticket", "200"),
        ):
            method = "POST" if route.endswith(("pipelines", "ticket")) else "GET"
            assert f'{{method="{method}",route="{route}",status="{status}"}}' in metrics, (route, status)
        resolved = re.search(
            r'conductor_worker_resolutions_total\{outcome="resolved",reason_code=""\} (\d+)', worker_metrics(worker)
        )
        assert resolved and int(resolved.group(1)) > 0
        generated = re.search(r"(\d+) generated, \1 passed", output)
        assert generated, output[-3000:]
        CASES[auth_mode] = int(generated.group(1))
        print(f"\nschemathesis, auth mode {auth_mode}: {CASES[auth_mode]} cases, 0 failures; {links.group(0)}")
        log = gateway.logs()
        assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
