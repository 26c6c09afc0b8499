"""Deferred acknowledgements (streams/delivery.py): a batch's events become committable only once its sends are
delivered, in batch order, while the agent is free to take the next batch."""

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.delivery import DeferredAcks


class _Message:
    def __init__(self, offset: int) -> None:
        self.offset, self.tp, self.refcount, self.committable = offset, ("t", 0), 1, False

    def incref(self) -> None:
        self.refcount += 1


class _Event:
    """Like Faust's: ack() drops a reference; the last one makes the offset committable."""

    def __init__(self, offset: int) -> None:
        self.message = _Message(offset)

    def ack(self) -> bool:
        self.message.refcount -= 1
        if self.message.refcount == 0:
            self.message.committable = not getattr(self.message, "_conductor_withheld", False)
            return True
        return False


def _app(crashes: list[BaseException]) -> Any:
    async def crash(exc: BaseException) -> None:
        crashes.append(exc)

    return SimpleNamespace(sensors=SimpleNamespace(on_message_out=lambda *args: None), crash=crash)


async def _take_ack(events: list[_Event]) -> None:
    """What take_events does after the body returned: ack each event once."""
    for event in events:
        event.ack()


async def _no_retry(events: Any) -> None:
    raise AssertionError("no retry expected")


def _committed(events: list[_Event]) -> list[bool]:
    return [e.message.committable for e in events]


async def test_events_become_committable_only_once_their_sends_are_delivered() -> None:
    acks = DeferredAcks(_app([]), "t")
    loop = asyncio.get_running_loop()
    delivery: asyncio.Future[None] = loop.create_future()
    events = [_Event(1), _Event(2)]
    await acks.defer(events, [delivery], _no_retry)
    await _take_ack(events)
    await asyncio.sleep(0.01)
    assert _committed(events) == [False, False]
    delivery.set_result(None)
    await acks.drain()
    assert _committed(events) == [True, True]


async def test_batches_are_acknowledged_in_order_even_when_a_later_one_is_delivered_first() -> None:
    acks = DeferredAcks(_app([]), "t")
    loop = asyncio.get_running_loop()
    first_sent: asyncio.Future[None] = loop.create_future()
    first, second = [_Event(1)], [_Event(2)]
    await acks.defer(first, [first_sent], _no_retry)
    await acks.defer(second, [], _no_retry)  # the agent is not held by the first batch's delivery
    await _take_ack(first + second)
    await asyncio.sleep(0.01)
    assert _committed(first + second) == [False, False]
    first_sent.set_result(None)
    await acks.drain()
    assert _committed(first + second) == [True, True]


async def test_the_follow_up_step_runs_after_delivery_and_its_sends_are_awaited_too() -> None:
    acks = DeferredAcks(_app([]), "t")
    loop = asyncio.get_running_loop()
    sent: asyncio.Future[None] = loop.create_future()
    answer: asyncio.Future[None] = loop.create_future()
    order: list[str] = []

    async def then() -> list[Any]:
        order.append(f"then (sent done: {sent.done()})")
        return [answer]

    events = [_Event(1)]
    await acks.defer(events, [sent], _no_retry, then)
    await _take_ack(events)
    sent.set_result(None)
    await asyncio.sleep(0.01)
    assert order == ["then (sent done: True)"] and _committed(events) == [False]
    answer.set_result(None)
    await acks.drain()
    assert _committed(events) == [True]


async def test_a_failed_delivery_runs_the_batch_again_before_acknowledging_it() -> None:
    acks = DeferredAcks(_app([]), "t")
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()
    failed.set_exception(ConnectionError("broker away"))
    retried: list[list[int]] = []

    async def retry(events: Any) -> None:
        retried.append([e.message.offset for e in events])

    events = [_Event(1), _Event(2)]
    await acks.defer(events, [failed], retry)
    await _take_ack(events)
    await acks.drain()
    assert retried == [[1, 2]] and _committed(events) == [True, True]


async def test_a_batch_neither_delivered_nor_settled_stays_uncommitted_and_crashes_the_app() -> None:
    crashes: list[BaseException] = []
    acks = DeferredAcks(_app(crashes), "t")
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()
    failed.set_exception(ConnectionError("broker away"))

    async def retry(events: Any) -> None:
        raise ConnectionError("still away")

    events = [_Event(1)]
    await acks.defer(events, [failed], retry)
    await _take_ack(events)
    await asyncio.gather(acks.drain(), return_exceptions=True)
    await asyncio.sleep(0.01)
    assert _committed(events) == [False] and events[0].message.refcount == 0
    assert [type(c) for c in crashes] == [ConnectionError]
