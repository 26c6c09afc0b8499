"""Start real service processes for tests and wait until they are ready (deadlines, never bare sleeps)."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from conductor import waiting as conductor_waiting
from conductor.broker import die_with_parent
from conductor.waiting import http_ok

REPO = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], bool], timeout: float, message: str, interval: float = 0.1) -> None:
    """Poll `condition` until it is true; fail the test with `message` after `timeout` seconds."""
    try:
        conductor_waiting.wait_until(condition, timeout, message, interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:.0f}s: {message}") from None


class ServiceProcess:
    """A `conductor` subcommand running as a real subprocess, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServiceProcess":
        """Launch the process (in its own process group, so stop() reaches its children)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conductor.cli", *self.args],
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=lambda: die_with_parent(signal.SIGKILL),  # never outlive the test run
            )
        return self

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the process's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, url: str, timeout: float) -> None:
        """Wait until `url` answers 200; fail with the log tail if the process dies or time runs out."""

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.args[0]} exited with {self.process.returncode}:\n{self.log_tail()}")
            return http_ok(url)

        try:
            wait_until(ready, timeout, f"{self.args[0]} ready at {url}", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log ---\n{self.log_tail()}") from None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop gracefully (SIGTERM), SIGKILL the group if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def kill(self) -> None:
        """Crash it: SIGKILL the whole group."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class WorkerProcess(ServiceProcess):
    """A real `conductor worker` on the given broker, with its own data dir and web port."""

    def __init__(self, broker_url: str, workdir: Path, web_port: int, **env: str) -> None:
        self.web_port = web_port
        self.data_dir = workdir / f"worker-{web_port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            ["worker", "--broker", broker_url, "--web-port", str(web_port), "--data-dir", str(self.data_dir)],
            {"CONDUCTOR_WORKER_LOG_LEVEL": "warning", **env},
            workdir / f"worker-{web_port}.log",
        )

    @property
    def web_url(self) -> str:
        """Return the worker's web base URL."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def internal_headers(self) -> dict[str, str]:
        """Return the X-Internal-Token header this worker's views require (none when it has no token)."""
        token = self.env.get("CONDUCTOR_INTERNAL_TOKEN", os.environ.get("CONDUCTOR_INTERNAL_TOKEN", ""))
        return {"X-Internal-Token": token} if token else {}

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        """GET one of the worker's web paths, with the internal token it requires."""
        return httpx.get(f"{self.web_url}{path}", headers=self.internal_headers, timeout=timeout)

    def start_and_wait(self, timeout: float = 90.0) -> "WorkerProcess":
        """Start and wait for /healthz (partitions assigned, tables recovered)."""
        self.start()
        self.wait_ready(f"{self.web_url}/healthz", timeout)
        return self

    def __enter__(self) -> "WorkerProcess":
        return self if self.process is not None else self.start_and_wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_worker(broker: object, tmp_path: Path, **env: str) -> WorkerProcess:
    """Return a started, ready worker (a context manager that stops it) on `broker` (an Broker)."""
    from conductor.broker import free_port

    return WorkerProcess(str(broker.url), tmp_path, free_port(), **env).start_and_wait()
