"""A stand-in for the worker's table views on a real socket, for gateway tests that script the worker's answers.

It speaks the worker's view contract (`GET /batches/{id}`, `GET /batches/{id}/requests/{cid}`,
`GET /batches/{id}/changes` (the long-poll: nothing ever changes here), `/healthz`,
`X-Internal-Token`) and can answer 503 a set number of times, as the worker does while partitions rebalance.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from conductor.broker import free_port


class StubWorker:
    """Serve scripted batch views; `.url`, `.batches`, `.outcomes`, `.unavailable`, `.seen`; a context manager."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.batches: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[tuple[str, str], dict[str, Any]] = {}
        self.unavailable = 0  # answer this many next view requests with 503
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Return the base URL to give the gateway as its worker URL."""
        return f"http://127.0.0.1:{self.port}"

    def register(self, batch_id: str, user_id: str | None = "teacher-1", essays: int = 2) -> dict[str, Any]:
        """Add a registered batch (a BatchStatusView) and return it."""
        view = {
            "batch_id": batch_id,
            "registered": True,
            "user_id": user_id,
            "expected_essay_count": essays,
            "essay_count": essays,
            "steps": [],
            "recent_requests": [],
        }
        self.batches[batch_id] = view
        return view

    def view_calls(self) -> int:
        """Return how many batch view requests arrived."""
        return sum(path.startswith("/batches/") for path, _ in self.seen)

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            self.seen.append((path, headers))
            if path == "/healthz":
                return 200, {"status": "ok"}
            if self.token and headers.get("x-internal-token") != self.token:
                return 401, {"detail": "missing or wrong X-Internal-Token header"}
            if self.unavailable > 0:
                self.unavailable -= 1
                return 503, {"detail": "rebalancing"}
        path, _, query = path.partition("?")
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "batches" and parts[2] == "changes" and parts[1] in self.batches:
            return self._changes(self.batches[parts[1]], dict(p.split("=", 1) for p in query.split("&") if "=" in p))
        if len(parts) == 2 and parts[0] == "batches" and parts[1] in self.batches:
            return 200, self.batches[parts[1]]
        if len(parts) == 4 and parts[0] == "batches" and parts[2] == "requests":
            outcome = self.outcomes.get((parts[1], parts[3]))
            if outcome is not None:
                return 200, outcome
        return 404, {"detail": "unknown"}

    @staticmethod
    def _changes(view: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        """The long-poll view: the batch at once when `after` is older, else 204 after `wait` seconds."""
        if int(query.get("after", "-1")) != view.get("version", 0):
            return 200, {"status": view, "progress_version": 0, "dropped_through": 0, "changed_at": 0.0}
        time.sleep(min(float(query.get("wait", "0")), 30.0))
        return 204, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, body = stub._answer(self.path, {k.lower(): v for k, v in self.headers.items()})
                payload = json.dumps(body).encode() if status != 204 else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway gave up on a long-poll (its stream ended): nobody to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> "StubWorker":
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "StubWorker":
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()
