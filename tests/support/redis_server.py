"""A Redis server on loopback for tests: the real `redis-server` when installed, else fakeredis on a real TCP socket.

Either way the gateway under test talks the Redis protocol to `redis://127.0.0.1:<port>/0` over TCP, Lua scripts
included (fakeredis needs its `[lua]` extra for the scripts of `limits`' strategies). `CONDUCTOR_TEST_REDIS` forces a
backend (`redis-server` or `fakeredis`); unset, the binary is preferred.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from conductor.broker import die_with_parent, free_port, wait_for_port

if TYPE_CHECKING:
    from fakeredis import TcpFakeServer

Backend = Literal["redis-server", "fakeredis"]
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _fakeredis_usable() -> bool:
    return importlib.util.find_spec("fakeredis") is not None and importlib.util.find_spec("lupa") is not None


def choose_backend() -> Backend | None:
    """Return the backend to use: `CONDUCTOR_TEST_REDIS` if set, else the binary, else fakeredis; None if none is."""
    forced = os.environ.get("CONDUCTOR_TEST_REDIS", "")
    if forced not in ("", "redis-server", "fakeredis"):
        raise ValueError(f"CONDUCTOR_TEST_REDIS={forced!r}: expected 'redis-server' or 'fakeredis'")
    if forced in ("", "redis-server") and shutil.which("redis-server") is not None:
        return "redis-server"
    if forced in ("", "fakeredis") and _fakeredis_usable():
        return "fakeredis"
    return None


def unavailable_reason() -> str | None:
    """Return why no Redis test server can run here (for a skip), or None if one can."""
    if importlib.util.find_spec("redis") is None:
        return "the `redis` client package is not installed (extra [dev] or [redis])"
    if choose_backend() is None:
        return "neither a redis-server binary nor fakeredis[lua] (extra [dev]) is installed"
    return None


class RedisServer:
    """A Redis server on a free loopback port; `.url`, `.backend`, `.stop()` (idempotent); a context manager.

    After `stop()` the port refuses connections and open connections are closed, as when a real server goes down.
    """

    def __init__(self, backend: Backend | None = None) -> None:
        chosen = backend or choose_backend()
        if chosen is None:
            raise RuntimeError(unavailable_reason() or "no Redis test server available")
        self.backend: Backend = chosen
        self.port = free_port(HOST)
        self.url = f"redis://{HOST}:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._fake: TcpFakeServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "RedisServer":
        """Start the server and wait (with a deadline) until its port accepts connections."""
        try:
            if self.backend == "redis-server":
                self._process = subprocess.Popen(
                    # No persistence: nothing written to disk, nothing to load at start.
                    ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=lambda: die_with_parent(signal.SIGKILL),  # never outlive the test run
                )
            else:
                from fakeredis import TcpFakeServer

                # Binds and listens in the constructor; serve_forever() accepts, one thread per connection.
                self._fake = TcpFakeServer((HOST, self.port), server_type="redis")
                self._thread = threading.Thread(
                    target=self._fake.serve_forever, kwargs={"poll_interval": 0.05}, name="fakeredis", daemon=True
                )
                self._thread.start()
            wait_for_port(HOST, self.port, START_TIMEOUT, self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server: its port refuses connections afterwards. Safe to call more than once."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        fake, self._fake = self._fake, None
        thread, self._thread = self._thread, None
        if fake is not None:
            if thread is not None:
                fake.shutdown()  # ends serve_forever() and tells the connection threads to finish (they poll 10 ms)
                thread.join(STOP_TIMEOUT)
            fake.server_close()  # closes the listening socket, joins the connection threads (they close their sockets)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
