"""Waiting with a deadline, for the dev runner, the benchmarks and the tests (never a bare sleep)."""

import time
from collections.abc import Callable

import httpx


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Return whether GET `url` answers 200 (False when it cannot be reached)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until true; raise TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
