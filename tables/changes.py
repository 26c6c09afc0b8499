"""Wake the long-polls waiting on a batch when the agents write one of its rows: one asyncio.Event per watched key.

A waiting long-poll costs an entry here and a suspended coroutine, nothing per second: no polling loop. A write
to a batch nobody watches costs one dict lookup.
"""

import asyncio
import time


class _Watch:
    __slots__ = ("changed_at", "event", "waiters")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.waiters = 0
        self.changed_at = 0.0


class ChangeFeed:
    """Per-batch wake-ups for long-polls (one event loop: the worker's)."""

    def __init__(self) -> None:
        self._watches: dict[str, _Watch] = {}

    def notify(self, batch_id: str) -> None:
        """Wake every long-poll waiting on `batch_id` (the agents call this after each write of its rows)."""
        watch = self._watches.pop(batch_id, None)
        if watch is not None:
            watch.changed_at = time.time()
            watch.event.set()

    def notify_all(self) -> None:
        """Wake every waiting long-poll (partitions are moving to other workers)."""
        for batch_id in list(self._watches):
            self.notify(batch_id)

    async def wait(self, batch_id: str, timeout: float) -> float | None:
        """Wait until `batch_id` is written or `timeout` passes; return the write's wall-clock time, or None."""
        watch = self._watches.get(batch_id)
        if watch is None:
            watch = self._watches[batch_id] = _Watch()
        watch.waiters += 1
        try:
            async with asyncio.timeout(timeout):
                await watch.event.wait()
        except TimeoutError:
            return None
        finally:
            watch.waiters -= 1
            if not watch.waiters and self._watches.get(batch_id) is watch:
                del self._watches[batch_id]  # nobody waits any more: forget the key
        return watch.changed_at

    def watched(self) -> int:
        """Return how many batches have a waiting long-poll."""
        return len(self._watches)


feed = ChangeFeed()
