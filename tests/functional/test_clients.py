"""The TypeScript client and the reference page against a real stack (broker, worker, gateway with the page).

One stack for the module: the `broker` fixture, a real worker, the demo batches of `conductor dev --demo`, a real
gateway serving the built page at /app/ (auth mode none) and one in auth mode jwt. Then, as subprocesses: the
client's drift check (regenerate from the gateway's /openapi.json, compare), `tsc --noEmit` for both packages, the
client's vitest suites (unit, and against both gateways), and the Playwright test of the page in Debian's Chromium.

Needs Node.js with npm, `npm ci` in clients/typescript and clients/web, the built page (`npm run build` in
clients/web) and `apt-get install -y chromium`; `make clients` does the npm part. Missing pieces fail, never skip.
"""

import asyncio
import difflib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.broker import free_port
from conductor.brokers import Broker
from conductor.demo import seed_demo
from tests.support import messages as m
from tests.support.browser import chromium_path
from tests.support.gateway_process import GatewayProcess
from tests.support.kafka import produce
from tests.support.processes import REPO, WorkerProcess, wait_until
from tests.support.tokens import JWT_ENV, token

pytestmark = [pytest.mark.integration, pytest.mark.http_surface]

CLIENT = REPO / "clients" / "typescript"
WEB = REPO / "clients" / "web"
DEMO_BATCH = "demo-spellchecked"
DEV_USER = "dev-user"
LIMITS = {
    f"CONDUCTOR_GATEWAY_RATE_LIMIT_{name}": "1000/second"
    for name in ("REQUEST_PIPELINE", "BATCH_STATUS", "REQUEST_OUTCOME", "LIST_PIPELINES", "BATCH_EVENTS")
}


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise AssertionError("npm is not installed: Node.js 20+ with npm is needed (see README, 'Clients')")
    for package in (CLIENT, WEB):
        if not (package / "node_modules").is_dir():
            raise AssertionError(f"{package}/node_modules is missing: run `make clients` (npm ci)")
    return npm


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a Node command; fail the test with its output if it fails."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(command)}` in {cwd} exited {result.returncode}:\n{output[-6000:]}"
    return output


class Stack:
    """The gateways under test: `open` (auth mode none, serving the page) and `jwt` (auth mode jwt)."""

    def __init__(self, open_gateway: GatewayProcess, jwt_gateway: GatewayProcess) -> None:
        self.open, self.jwt = open_gateway, jwt_gateway


@pytest.fixture(scope="module")
def stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A real worker, two gateways (auth none with the page, auth jwt) and the demo batches registered."""
    _npm()
    dist = WEB / "dist"
    assert (dist / "index.html").is_file(), "the page is not built: run `make clients` (npm run build in clients/web)"
    workdir = Path(tmp_path_factory.mktemp("clients"))
    app_id = {"CONDUCTOR_WORKER_APP_ID": f"clients-{uuid.uuid4().hex[:8]}"}
    with WorkerProcess(broker.url, workdir, free_port(), **app_id) as worker:
        open_gw = GatewayProcess(
            broker.url, workdir, free_port(), worker.web_url, CONDUCTOR_GATEWAY_WEB_DIR=str(dist), **LIMITS
        )
        jwt_gw = GatewayProcess(broker.url, workdir, free_port(), worker.web_url, **LIMITS, **JWT_ENV)
        try:
            open_gw.start_and_wait()
            jwt_gw.start_and_wait()
            asyncio.run(seed_demo(broker.bootstrap, DEV_USER))

            def demo_ready() -> bool:
                with open_gw.client() as client:
                    answer = client.get(f"/v1/batches/{DEMO_BATCH}/status")
                if answer.status_code != 200:
                    return False
                steps = {s["step"]: s["status"] for s in answer.json()["steps"]}
                return steps.get("spellcheck") == "completed"

            wait_until(demo_ready, 60, f"{DEMO_BATCH} registered with spellcheck complete")
            yield Stack(open_gw, jwt_gw)
        finally:
            jwt_gw.stop()
            open_gw.stop()


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> GatewayProcess:
    """The gateway in auth mode none that serves the page."""
    return stack.open


# The page test runs first, on a batch no other test has touched yet, so its screenshot shows one request.
def test_page_in_chromium_shows_a_request_and_step_progress_arrive_through_the_push(
    broker: Broker, gateway: GatewayProcess, tmp_path: Path
) -> None:
    screenshot, signals = tmp_path / "reference-page.png", tmp_path / "signals"
    signals.mkdir()
    env = {
        "CONDUCTOR_GATEWAY_URL": gateway.url,
        "CONDUCTOR_E2E_SIGNAL_DIR": str(signals),
        "CONDUCTOR_SCREENSHOT": str(screenshot),
        "CHROMIUM": chromium_path(),
    }
    log = tmp_path / "e2e.log"
    with log.open("w") as out:
        e2e = subprocess.Popen(
            [_npm(), "run", "e2e"],
            cwd=WEB,
            env={**os.environ, "NO_COLOR": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # The page shows the request resolved; now the platform completes nlp on the batch's essays.
            wait_until(lambda: (signals / "resolved").exists() or e2e.poll() is not None, 120, "page saw resolved")
            if e2e.poll() is None:
                essays = [f"{DEMO_BATCH}-essay-{i}" for i in (1, 2, 3)]
                done = m.phase_outcome(DEMO_BATCH, "nlp", essays)
                asyncio.run(produce(broker.bootstrap, [(done["event_type"], DEMO_BATCH.encode(), m.as_bytes(done))]))
            code = e2e.wait(timeout=240)
        finally:
            if e2e.poll() is None:
                os.killpg(e2e.pid, signal.SIGKILL)
                e2e.wait(5)
    assert code == 0, f"the page test failed:\n{log.read_text()[-6000:]}"
    for line in log.read_text().splitlines():
        if "latency " in line:
            print(line.strip().lstrip("# "))  # the page's latencies (pytest -s shows them)
    assert screenshot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    if os.environ.get("CONDUCTOR_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, REPO / "docs" / "reference-page.png")


def test_client_is_generated_from_the_gateway_openapi(gateway: GatewayProcess, tmp_path: Path) -> None:
    fresh = tmp_path / "schema.d.ts"
    _run(
        [_npm(), "run", "generate"],
        CLIENT,
        {"CONDUCTOR_GATEWAY_URL": gateway.url, "CONDUCTOR_CLIENT_SCHEMA": str(fresh)},
    )
    committed = (CLIENT / "src" / "schema.d.ts").read_text()
    if fresh.read_text() != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), fresh.read_text().splitlines(), "committed", "from the gateway", lineterm=""
        )
        pytest.fail(
            "clients/typescript/src/schema.d.ts differs from the gateway's OpenAPI: regenerate it with "
            "`CONDUCTOR_GATEWAY_URL=http://127.0.0.1:4001 npm run generate` in clients/typescript (gateway running)\n"
            + "\n".join(list(diff)[:60])
        )


@pytest.mark.parametrize("package", [CLIENT, WEB], ids=["typescript", "web"])
def test_typescript_compiles(package: Path) -> None:
    _run([str(package / "node_modules" / ".bin" / "tsc"), "--noEmit"], package)


@pytest.mark.parametrize("package", [CLIENT, WEB], ids=["typescript", "web"])
def test_unit_tests(package: Path) -> None:
    output = _run([_npm(), "test"], package)
    assert " passed" in output and "failed" not in output, output[-3000:]


def test_client_against_the_real_gateway(stack: Stack) -> None:
    expires = int(time.time()) + 1800
    env = {
        "CONDUCTOR_GATEWAY_URL": stack.open.url,
        "CONDUCTOR_JWT_GATEWAY_URL": stack.jwt.url,
        "CONDUCTOR_TEST_TOKEN": token(DEV_USER, exp=expires),
        "CONDUCTOR_TEST_OTHER_TOKEN": token("someone-else", exp=expires),
    }
    output = _run([_npm(), "run", "test:gateway"], CLIENT, env, timeout=600)
    assert " passed" in output and "failed" not in output, output[-3000:]
