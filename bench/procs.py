"""Processes the benchmarks start (broker, workers, gateways, ceilings): started, watched and always stopped."""

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from conductor.broker import die_with_parent, free_port
from conductor.brokers import Broker
from conductor.waiting import http_ok, wait_until

REPO = Path(__file__).resolve().parents[1]
# The source tree workers run from: this repo, or another checkout for before/after runs (`--worker-src`).
WORKER_SRC = REPO
# When set (`--profile`), workers run under py-spy, which writes collapsed stacks here when the worker exits.
PROFILE_DIR: Path | None = None
# The environment the current phase's broker needs in every worker, gateway and ceiling (bench/phase.py sets it:
# nothing for the embedded broker; on Apache Kafka the production profile and an internal token). A service's own
# settings win over it.
SERVICE_ENV: dict[str, str] = {}
INTERNAL_TOKEN_HEADER = "X-Internal-Token"  # tables/views.py: the worker's views want it when a token is set
_RUNNING: list["Service"] = []
_BROKERS: list[Broker] = []


def _die_with_parent() -> None:
    # SIGTERM the child when the bench dies, even by SIGKILL, so no worker or gateway outlives it.
    die_with_parent(signal.SIGTERM)
    os.setsid()


def track_broker(broker: Broker) -> None:
    """Have stop_all() stop `broker` too (after the services), whatever ends the run."""
    _BROKERS.append(broker)


def untrack_broker(broker: Broker) -> None:
    """Forget a broker its phase stopped."""
    if broker in _BROKERS:
        _BROKERS.remove(broker)


def broker_pids(broker: Broker) -> list[int]:
    """Return the process ids of a running broker (one Tansu process, or one JVM per Kafka node)."""
    procs = [getattr(broker, "process", None)] + [node.process for node in getattr(broker, "members", [])]
    return [p.pid for p in procs if p is not None and p.poll() is None]


def cpu_seconds_of(pids: list[int]) -> float:
    """Return the user+system CPU time the processes `pids` (and their children) used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = p.cpu_times()
                    total += times.user + times.system
    return total


def stop_all() -> None:
    """Stop every service still running (newest first), then any broker a phase left; called at exit and on errors."""
    while _RUNNING:
        _RUNNING.pop().stop()
    while _BROKERS:
        _BROKERS.pop().stop()


atexit.register(stop_all)


class Service:
    """A subprocess with its output in a log file; stop() ends its whole process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO) -> None:
        self.name = name
        self.cwd = cwd
        self.argv = argv
        self.env = {**SERVICE_ENV, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> "Service":
        """Launch the process in its own session (so stop() reaches its children)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        _RUNNING.append(self)
        return self

    profiled = False

    @property
    def pid(self) -> int:
        """Return the id of the process under test (under py-spy: py-spy's child)."""
        assert self.process is not None, f"{self.name} is not running"
        if self.profiled:
            children = psutil.Process(self.process.pid).children()
            if children:
                return int(children[0].pid)
        return self.process.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_http(self, url: str, timeout: float) -> float:
        """Wait until `url` answers 200; return seconds since start. Raise with the log tail if it dies."""

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            return http_ok(url)

        try:
            wait_until(ready, timeout, f"{self.name} at {url}", interval=0.1)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {self.name} log ---\n{self.log_tail()}") from None
        return time.monotonic() - self.started_at

    def rss_bytes(self) -> int:
        """Return the resident memory of the process and its children."""
        proc = psutil.Process(self.pid)
        return int(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))

    def cpu_seconds(self) -> float:
        """Return user+system CPU time consumed so far by the process."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def pause(self) -> None:
        """SIGSTOP the process (it keeps its memory, sockets and group membership for a short while)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the process."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers."""
        if self.profiled and self.alive():
            # Stop the profiled process alone: py-spy then writes its profile and exits by itself.
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                assert self.process is not None
                self.process.wait(timeout + 30)
        proc, self.process = self.process, None
        if self in _RUNNING:
            _RUNNING.remove(self)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class Worker(Service):
    """A real `conductor worker` subprocess on the bench's broker, with its own store and web port."""

    def __init__(self, broker: Broker, workdir: Path, name: str = "worker", **env: str) -> None:
        self.web_port = free_port()
        self.data_dir = workdir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "conductor.cli", "worker",
            "--broker", broker.url, "--web-port", str(self.web_port), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        env = {"CONDUCTOR_WORKER_LOG_LEVEL": "warning", "PYTHONPATH": str(WORKER_SRC), **env}
        if PROFILE_DIR is not None:
            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            out = PROFILE_DIR / f"{workdir.name}-{name}.collapsed.txt"
            argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "200", "--format", "raw",
                    "--output", str(out), "--", *argv]  # fmt: skip
        super().__init__(name, argv, env, workdir / f"{name}.log", cwd=WORKER_SRC)
        self.profiled = PROFILE_DIR is not None

    @property
    def url(self) -> str:
        """Return the worker's web base URL."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def headers(self) -> dict[str, str]:
        """Return the headers the worker's views want (its internal token, when the broker's profile sets one)."""
        token = self.env.get("CONDUCTOR_INTERNAL_TOKEN", "")
        return {INTERNAL_TOKEN_HEADER: token} if token else {}

    def start_ready(self, timeout: float = 120.0) -> float:
        """Start and wait for /healthz (partitions assigned, tables recovered); return seconds to ready."""
        self.start()
        return self.wait_http(f"{self.url}/healthz", timeout)
