"""Fan the worker's batch changes out to open event streams: one long-poll per watched batch, shared by its streams.

The gateway keeps no batch state: a batch is watched only while a stream of it is open, and what a watch holds is
the worker's last answer, to hand to a stream that joins. Caps: open streams per client (429) and per gateway
(503). `close()` ends every stream (shutdown).
"""

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from uuid import UUID

from gateway.errors import RateLimited, ServiceUnavailable, StateUnavailable, WorkerError
from gateway.events import HEARTBEAT, Changes, StreamPosition, pending_frame
from gateway.metrics import GatewayMetrics
from gateway.models import outcome_view
from gateway.settings import GatewaySettings
from gateway.state_client import StateClient

log = logging.getLogger("gateway.push")

# Pause after a failed long-poll (worker down or rebalancing) before the watch asks again.
RETRY_SECONDS = 1.0
# A stream that does not read keeps at most this many undelivered items (a newer answer replaces an older one).
MAX_QUEUED = 64


class StreamsExhausted(ServiceUnavailable):
    """This gateway has as many open streams as it may hold."""

    code = "STREAMS_EXHAUSTED"


class TooManyStreams(RateLimited):
    """The client has as many open streams as it may."""

    code = "TOO_MANY_STREAMS"


class Slot:
    """One stream's place under the caps, given back once."""

    __slots__ = ("client", "hub", "released")

    def __init__(self, hub: "PushHub", client: str) -> None:
        self.hub, self.client, self.released = hub, client, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.hub.release(self.client)


class Subscriber:
    """One open stream's inbox: answers (a newer replaces an unread older one) and pending announcements."""

    __slots__ = ("items", "wake")

    def __init__(self) -> None:
        self.items: deque[Changes | UUID] = deque()
        self.wake = asyncio.Event()

    def put(self, item: Changes | UUID) -> None:
        if isinstance(item, Changes) and self.items and isinstance(self.items[-1], Changes):
            self.items[-1] = item
        elif len(self.items) < MAX_QUEUED:
            self.items.append(item)
        self.wake.set()


class Watch:
    """The long-poll of one batch on the worker, for as long as one of its streams is open."""

    def __init__(self, hub: "PushHub", batch_id: str) -> None:
        self.hub, self.batch_id = hub, batch_id
        self.subscribers: set[Subscriber] = set()
        self.latest: Changes | None = None
        self.task: asyncio.Task[None] | None = None

    def publish(self, changes: Changes) -> None:
        self.latest = changes
        for subscriber in self.subscribers:
            subscriber.put(changes)

    async def run(self) -> None:
        hub = self.hub
        while self.subscribers:
            after = self.latest.version if self.latest else -1
            try:
                answer = await hub.state.changes(self.batch_id, after, hub.poll_seconds)
            except (StateUnavailable, WorkerError) as exc:
                log.info("watch of a batch: %s; asking again in %.0f s", exc.detail, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if answer is None:
                continue
            if self.latest is not None and answer.status.version == self.latest.version:
                await asyncio.sleep(RETRY_SECONDS)  # the worker answered without a change: never spin
                continue
            if answer.changed_at:
                hub.metrics.push_lag.observe(max(0.0, time.time() - answer.changed_at))
            self.publish(Changes(answer))


class PushHub:
    """Open streams, per-batch watches and the stream caps of one gateway process."""

    def __init__(self, settings: GatewaySettings, state: StateClient, metrics: GatewayMetrics) -> None:
        self.state, self.metrics = state, metrics
        self.poll_seconds = settings.stream_poll_seconds
        self.heartbeat = settings.stream_heartbeat_seconds
        self.max_seconds = settings.stream_max_seconds
        self.max_per_client = settings.stream_max_per_client
        self.max_total = settings.stream_max
        self.retry_after = settings.retry_after_seconds
        self.watches: dict[str, Watch] = {}
        self.per_client: dict[str, int] = {}
        self.open = 0
        self.closing = asyncio.Event()

    def reserve(self, client: str) -> "Slot":
        """Count a stream against the caps, or refuse it (429 per client, 503 per gateway)."""
        if self.closing.is_set() or self.open >= self.max_total:
            self.metrics.streams_refused.labels("gateway").inc()
            raise StreamsExhausted(
                "This gateway holds as many event streams as it may; retry shortly.",
                headers={"Retry-After": str(self.retry_after)},
            )
        if self.per_client.get(client, 0) >= self.max_per_client:
            self.metrics.streams_refused.labels("client").inc()
            raise TooManyStreams(
                f"At most {self.max_per_client} open event streams per client; close one first.",
                headers={"Retry-After": str(self.retry_after)},
                extra={"retry_after": self.retry_after},
            )
        self.per_client[client] = self.per_client.get(client, 0) + 1
        self.open += 1
        self.metrics.open_streams.set(self.open)
        return Slot(self, client)

    def release(self, client: str) -> None:
        """Give back a stream's place under the caps."""
        left = self.per_client.get(client, 0) - 1
        if left > 0:
            self.per_client[client] = left
        else:
            self.per_client.pop(client, None)
        self.open -= 1
        self.metrics.open_streams.set(self.open)

    def announce_pending(self, batch_id: str, correlation_id: UUID) -> None:
        """Tell this gateway's streams of the batch that a request was accepted (its outcome is not known yet)."""
        watch = self.watches.get(batch_id)
        if watch is not None:
            for subscriber in watch.subscribers:
                subscriber.put(correlation_id)

    def stream(self, batch_id: str, slot: "Slot", cursor: int | None) -> AsyncIterator[bytes]:
        """Return the stream's events; its slot is given back when it ends, or when it is dropped unstarted."""
        events = self._events(batch_id, slot, cursor)
        weakref.finalize(events, slot.release)
        return events

    async def _events(self, batch_id: str, slot: "Slot", cursor: int | None) -> AsyncIterator[bytes]:
        """Yield a snapshot or a resumption first, then the batch's changes; heartbeats when idle."""
        subscriber = Subscriber()
        watch = self._join(batch_id, subscriber)
        position = StreamPosition(cursor=cursor)
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self.closing.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if not subscriber.items:
                    subscriber.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(self.heartbeat, left)):
                            await subscriber.wake.wait()
                if not subscriber.items:
                    if not self.closing.is_set() and deadline > time.monotonic():
                        yield HEARTBEAT
                    continue
                for data in self._frames(batch_id, subscriber.items.popleft(), position):
                    yield data
        finally:
            self._leave(watch, subscriber)
            slot.release()

    def _frames(self, batch_id: str, item: Changes | UUID, position: StreamPosition) -> list[bytes]:
        if isinstance(item, Changes):
            frames = position.advance(item)
            for data in frames:
                self.metrics.stream_events.labels(data[7 : data.index(b"\n")].decode()).inc()
            return frames
        if position.cursor is None or item in position.resolved:
            return []  # not started yet (its snapshot will show it), or already resolved: no pending step back
        self.metrics.stream_events.labels("request").inc()
        return [pending_frame(outcome_view(batch_id, item, None), position.cursor)]

    def _join(self, batch_id: str, subscriber: Subscriber) -> Watch:
        watch = self.watches.get(batch_id)
        if watch is None:
            watch = self.watches[batch_id] = Watch(self, batch_id)
            self.metrics.watched_batches.set(len(self.watches))
        watch.subscribers.add(subscriber)
        if watch.latest is not None:
            subscriber.put(watch.latest)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(watch.run(), name=f"watch-{batch_id[:40]}")
        return watch

    def _leave(self, watch: Watch, subscriber: Subscriber) -> None:
        watch.subscribers.discard(subscriber)
        if not watch.subscribers:
            if watch.task is not None:
                watch.task.cancel()
            if self.watches.get(watch.batch_id) is watch:
                del self.watches[watch.batch_id]
            self.metrics.watched_batches.set(len(self.watches))

    async def close(self) -> None:
        """End every open stream and stop every watch (shutdown)."""
        self.closing.set()
        for watch in list(self.watches.values()):
            for subscriber in watch.subscribers:
                subscriber.wake.set()
            if watch.task is not None:
                watch.task.cancel()
        await asyncio.sleep(0)
