"""Stream tickets and the push hub's caps and shared long-polls, with a scripted worker (no network)."""

import asyncio
import gc
import time
from typing import Any

import jwt
import pytest

from contracts.state import BatchChanges, BatchStatusView
from gateway.errors import InvalidToken
from gateway.metrics import GatewayMetrics
from gateway.push import PushHub, StreamsExhausted, TooManyStreams
from gateway.security import Principal
from gateway.settings import GatewaySettings
from gateway.tickets import StreamTickets

ALICE = Principal("alice", frozenset({"teacher"}))


def settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(**{"stream_heartbeat_seconds": 0.05, "stream_poll_seconds": 5, **overrides})


def test_a_ticket_names_its_user_and_batch_and_nothing_else() -> None:
    tickets = StreamTickets(settings(stream_ticket_secret="a-shared-secret-for-every-replica-0123"))
    ticket = tickets.issue(ALICE, "b1")
    assert tickets.verify(ticket, "b1") == ALICE
    with pytest.raises(InvalidToken, match="another batch"):
        tickets.verify(ticket, "b2")
    other_replica = StreamTickets(settings(stream_ticket_secret="a-shared-secret-for-every-replica-0123"))
    assert other_replica.verify(ticket, "b1").sub == "alice"  # same secret: any replica opens it
    with pytest.raises(InvalidToken, match="invalid"):
        StreamTickets(settings()).verify(ticket, "b1")  # another key (unset: random per process)


def test_an_expired_or_foreign_token_is_no_ticket() -> None:
    tickets = StreamTickets(settings(stream_ticket_secret="k" * 40))
    claims = jwt.decode(tickets.issue(ALICE, "b1"), options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, "k" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken, match="expired"):
        tickets.verify(expired, "b1")
    bearer_like = jwt.encode({**claims, "aud": "batch-conductor"}, "k" * 40, algorithm="HS256")
    with pytest.raises(InvalidToken):
        tickets.verify(bearer_like, "b1")  # a token for another audience (e.g. the API) opens no stream


class ScriptedWorker:
    """Answers long-polls from a queue; counts them."""

    def __init__(self) -> None:
        self.version = 1
        self.calls: list[tuple[str, int]] = []
        self.changed = asyncio.Event()

    def view(self, batch_id: str) -> BatchChanges:
        return BatchChanges(status=BatchStatusView(batch_id=batch_id, version=self.version, registered=True))

    async def changes(self, batch_id: str, after: int, wait: float) -> BatchChanges | None:
        self.calls.append((batch_id, after))
        if after != self.version:
            return self.view(batch_id)
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), wait)
        except TimeoutError:
            return None
        return self.view(batch_id)


async def first_frame(stream: Any) -> bytes:
    frame: bytes = await anext(stream)
    return frame


async def test_streams_of_one_batch_share_one_long_poll_and_get_snapshots() -> None:
    worker = ScriptedWorker()
    hub = PushHub(settings(), worker, GatewayMetrics())  # type: ignore[arg-type]
    one = hub.stream("b1", hub.reserve("ip:1"), None)
    two = hub.stream("b1", hub.reserve("ip:2"), None)
    assert (await first_frame(one)).startswith(b"event: snapshot\n")
    assert (await first_frame(two)).startswith(b"event: snapshot\n")
    worker.version = 2
    worker.changed.set()
    await asyncio.sleep(0.05)
    assert len({after for _, after in worker.calls}) == len(worker.calls)  # one poll per version, not per stream
    await one.aclose()
    await two.aclose()
    assert hub.open == 0 and not hub.watches


async def test_caps_refuse_per_client_and_per_gateway_and_places_come_back() -> None:
    hub = PushHub(settings(stream_max_per_client=2, stream_max=3), ScriptedWorker(), GatewayMetrics())  # type: ignore[arg-type]
    slots = [hub.reserve("ip:1"), hub.reserve("ip:1")]
    with pytest.raises(TooManyStreams):
        hub.reserve("ip:1")
    slots.append(hub.reserve("ip:2"))
    with pytest.raises(StreamsExhausted):
        hub.reserve("ip:3")
    slots[0].release()
    slots[0].release()  # once only
    assert hub.open == 2
    # A stream that never started (its client left before the first byte) gives its place back when dropped.
    stream = hub.stream("b1", hub.reserve("ip:1"), None)
    assert hub.open == 3
    del stream
    gc.collect()
    assert hub.open == 2


async def test_heartbeats_when_idle_and_close_ends_every_stream() -> None:
    hub = PushHub(settings(), ScriptedWorker(), GatewayMetrics())  # type: ignore[arg-type]
    stream = hub.stream("b1", hub.reserve("ip:1"), None)
    assert (await first_frame(stream)).startswith(b"event: snapshot")
    assert await first_frame(stream) == b": heartbeat\n\n"
    await hub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert hub.open == 0
