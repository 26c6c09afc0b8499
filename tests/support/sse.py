"""Read a real text/event-stream in a background thread and wait on what arrived (with deadlines)."""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.processes import wait_until


@dataclass
class Event:
    """One server-sent event as the wire carried it (`data` parsed as JSON)."""

    event: str
    id: str | None
    raw: str
    at: float = field(default_factory=time.time)

    @property
    def data(self) -> Any:
        return json.loads(self.raw)


class EventStream:
    """GET an event stream and collect its events and comment lines until it ends or `close()`."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        self.url, self.headers, self.timeout = url, headers or {}, timeout
        self.events: list[Event] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.content_type: str | None = None
        self.body: bytes = b""
        self.ended = threading.Event()
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> "EventStream":
        self._thread.start()
        if not self._started.wait(self.timeout):
            raise AssertionError(f"no response from {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _read(self) -> None:
        try:
            with httpx.Client(trust_env=False, timeout=httpx.Timeout(10.0, read=self.timeout)) as client:
                with client.stream("GET", self.url, headers=self.headers) as response:
                    self.status, self.content_type = response.status_code, response.headers.get("content-type")
                    if response.status_code != 200:
                        self.body = response.read()
                        self._started.set()
                        return
                    self._started.set()
                    self._parse(response)
        except httpx.HTTPError:
            pass
        finally:
            self._started.set()
            self.ended.set()

    def _parse(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if not line:
                if "event" in fields or "data" in fields:
                    self.events.append(Event(fields.get("event", "message"), fields.get("id"), fields.get("data", "")))
                fields = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value

    def wait_for(self, condition: Callable[[list[Event]], bool], timeout: float = 20.0, what: str = "events") -> None:
        """Wait until `condition(events)` holds; fail with what arrived."""
        try:
            wait_until(lambda: condition(list(self.events)), timeout, what, interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {[(e.event, e.id) for e in self.events]}") from None

    def of(self, kind: str) -> list[Event]:
        """Return the events of one type so far."""
        return [e for e in self.events if e.event == kind]
