"""Acknowledge a batch's input events only once what it sent is delivered, without holding up the next batch.

At-least-once needs a batch's input offsets to stay uncommitted until the broker has acknowledged every record the
batch sent (Faust commits a forced send's input offset without waiting for it). Waiting for that inside the agent
body cost one acks=all round trip per batch, and `Stream.take_events` stops filling its buffer while the body runs,
so the stream idled through every round trip (bench/README.md: the acknowledgement wait per batch).

Instead, a batch's events get one more reference before `take_events` acks them, so that ack does not make them
committable; a task per agent then, batch after batch in order, awaits the batch's deliveries and drops that last
reference: only then can Faust commit the offsets. The agent meanwhile takes the next batch. If a delivery fails,
the batch is run again by its agent's settle function (which retries, then dead-letters, then crashes: the same as
a failure inside the body), so nothing is acknowledged that was not delivered.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.types import AppT, EventT

log = logging.getLogger(__name__)

Finish = Callable[[], Awaitable[Sequence[Awaitable[Any]]]]
Retry = Callable[[Sequence[EventT[Any]]], Awaitable[None]]


class DeferredAcks:
    """One agent's batches, acknowledged in order, each once its sends are delivered."""

    def __init__(self, app: AppT, name: str, limit: int = 8) -> None:
        self.app = app
        self.name = name
        self._tail: asyncio.Future[None] | None = None
        # At most this many batches in flight: a broker that stops acknowledging holds the agent, as before.
        self._slots = asyncio.Semaphore(limit)

    async def defer(
        self, events: Sequence[EventT[Any]], sent: Sequence[Awaitable[Any]], retry: Retry, then: Finish | None = None
    ) -> None:
        """Keep `events` uncommitted until `sent` (then what `then` sends, once `sent` is delivered) is delivered.

        `then` runs after every earlier batch finished and after `sent` was delivered: a step that must follow
        delivery (answers after their recorded outcomes reached the changelog) goes there.
        """
        for event in events:
            event.message.incref()  # take_events' own ack now leaves them uncommitted
        await self._slots.acquire()
        self._tail = asyncio.ensure_future(self._finish(self._tail, events, sent, retry, then))

    async def _finish(
        self,
        previous: asyncio.Future[None] | None,
        events: Sequence[EventT[Any]],
        sent: Sequence[Awaitable[Any]],
        retry: Retry,
        then: Finish | None,
    ) -> None:
        try:
            if previous is not None:
                await previous  # in order: never raises (failures are handled below)
            try:
                if sent:
                    await asyncio.gather(*sent)
                if then is not None:
                    more = await then()
                    if more:
                        await asyncio.gather(*more)
            except Exception:
                log.exception("%s: a batch of %d event(s) was not delivered; running it again", self.name, len(events))
                try:
                    await retry(events)
                except Exception:
                    log.exception("%s: a batch of %d event(s) could not be settled", self.name, len(events))
                    raise
            self._ack(events)
        except BaseException as exc:
            # Not delivered and not dead-lettered: the offsets must stay uncommitted (redelivered after a restart).
            from streams.faust_fixes import withhold_acks

            withhold_acks(events)
            self._ack(events)
            if not isinstance(exc, asyncio.CancelledError):
                await self.app.crash(exc)
        finally:
            self._slots.release()

    def _ack(self, events: Sequence[EventT[Any]]) -> None:
        on_out = self.app.sensors.on_message_out
        for event in events:
            if event.ack():
                message = event.message
                on_out(message.tp, message.offset, message)

    async def drain(self) -> None:
        """Wait until every deferred batch is finished."""
        if self._tail is not None:
            await asyncio.shield(self._tail)
