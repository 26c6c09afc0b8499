"""Push, pure parts: batch versions in the projection, the worker's change feed, and events from a stream's cursor."""

import asyncio
from datetime import UTC, datetime
from uuid import UUID

from contracts.state import BatchChanges, BatchRequests, BatchState, EssayOutcome, Registration, RequestOutcome
from gateway.events import Changes, StreamPosition
from tables.changes import ChangeFeed
from tables.projection import MAX_KEPT_REQUESTS, batch_changes, next_version, record_request

BATCH = "batch-1"
STEPS = ["spellcheck", "nlp"]


def outcome(n: int, version: int) -> RequestOutcome:
    return RequestOutcome(
        client_correlation_id=UUID(int=n),
        version=version,
        requested_pipeline="nlp",
        requested_at=datetime(2026, 12, 1, tzinfo=UTC),
        status="resolved",
        final_pipeline=["nlp"],
    )


def changes(state_version: int, outcomes: list[RequestOutcome], dropped: int = 0, essays: int = 0) -> Changes:
    registration = Registration(
        essay_ids=("e1", "e2"), expected_essay_count=2, at=datetime(2026, 1, 1, tzinfo=UTC), event_id="r"
    )
    steps = {
        "spellcheck": {f"e{i + 1}": EssayOutcome(at=datetime(2026, 1, 1, tzinfo=UTC), ok=True) for i in range(essays)}
    }
    state = BatchState(version=state_version, batch_id=BATCH, registration=registration, steps=steps)
    requests = BatchRequests(
        version=max((o.version for o in outcomes), default=0),
        batch_id=BATCH,
        requests=outcomes,
        dropped_through=dropped,
    )
    return Changes(batch_changes(BATCH, state, requests, STEPS, 0.0))


def kinds(frames: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for frame in frames:
        lines = dict(line.split(": ", 1) for line in frame.decode().strip().split("\n"))
        out.append((lines["event"], lines["id"]))
    return out


def test_the_next_version_is_above_both_rows() -> None:
    assert next_version(None, 0) == 1
    assert next_version(BatchState(version=4, batch_id=BATCH), 9) == 10
    assert next_version(BatchState(version=12, batch_id=BATCH), 9) == 13


def test_the_request_log_remembers_the_newest_dropped_version() -> None:
    log = None
    for n in range(MAX_KEPT_REQUESTS + 3):
        log = record_request(log, BATCH, outcome(n, n + 1))
    assert log is not None and len(log.requests) == MAX_KEPT_REQUESTS
    assert log.version == MAX_KEPT_REQUESTS + 3 and log.dropped_through == 3


def test_rows_are_written_with_their_version_first() -> None:
    # tables.batch_state reads the other row's version from this prefix without parsing the row.
    assert BatchState(version=7, batch_id=BATCH).model_dump_json().startswith('{"version":7,')
    assert BatchRequests(version=8, batch_id=BATCH).model_dump_json().startswith('{"version":8,')


def test_a_new_stream_gets_a_snapshot_then_only_what_changed() -> None:
    position = StreamPosition()
    first = changes(1, [])
    assert kinds(position.advance(first)) == [("snapshot", "1")]
    assert position.advance(first) == []
    second = changes(3, [outcome(1, 2)], essays=1)  # a request at 2, then progress at 3
    assert kinds(position.advance(second)) == [("request", "2"), ("progress", "3")]
    third = changes(3, [outcome(1, 2), outcome(2, 4), outcome(3, 5)], essays=1)  # requests only, oldest first
    assert kinds(position.advance(third)) == [("request", "4"), ("request", "5")]
    assert position.cursor == 5


def test_progress_is_sent_only_when_the_steps_changed() -> None:
    position = StreamPosition()
    position.advance(changes(1, [], essays=1))
    assert position.advance(changes(2, [], essays=1)) == []  # a write that left the counts as they were


def test_resumption_sends_what_was_missed_or_a_snapshot() -> None:
    now = changes(6, [outcome(1, 2), outcome(2, 5)], essays=2)
    assert kinds(StreamPosition(cursor=3).advance(now)) == [("request", "5"), ("progress", "6")]
    assert kinds(StreamPosition(cursor=5).advance(now)) == [("progress", "6")]
    assert StreamPosition(cursor=6).advance(now) == []
    assert kinds(StreamPosition(cursor=60).advance(now)) == [("snapshot", "6")]  # ahead of the worker
    gap = changes(9, [outcome(3, 8)], dropped=7)
    assert kinds(StreamPosition(cursor=5).advance(gap)) == [("snapshot", "9")]  # outcomes dropped after 5
    assert kinds(StreamPosition(cursor=7).advance(gap)) == [("request", "8"), ("progress", "9")]


def test_snapshot_data_is_the_status_and_request_data_the_outcome_view() -> None:
    now = changes(2, [outcome(1, 2)])
    snapshot = StreamPosition().advance(now)[0].decode()
    assert f"data: {now.status.model_dump_json()}\n" in snapshot
    request = StreamPosition(cursor=1).advance(now)[0].decode()
    assert '"status":"resolved"' in request and f'"correlation_id":"{UUID(int=1)}"' in request
    assert isinstance(now.changes, BatchChanges)


async def test_the_change_feed_wakes_waiters_of_that_batch_only() -> None:
    feed = ChangeFeed()
    woken = asyncio.create_task(feed.wait("a", 5))
    other = asyncio.create_task(feed.wait("b", 0.2))
    await asyncio.sleep(0.01)
    assert feed.watched() == 2
    feed.notify("a")
    assert (await woken) is not None
    assert (await other) is None  # timed out
    assert feed.watched() == 0  # no waiter left behind
    feed.notify("nobody")  # a write nobody watches costs a lookup


async def test_the_change_feed_wakes_everyone_on_a_rebalance() -> None:
    feed = ChangeFeed()
    waits = [asyncio.create_task(feed.wait(key, 5)) for key in ("a", "a", "b")]
    await asyncio.sleep(0.01)
    feed.notify_all()
    assert all(t is not None for t in await asyncio.gather(*waits))
