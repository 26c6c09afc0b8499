"""What an agent does with a batch whose body raises (streams/agents.py `_settle`); the broker-level effect is in
tests/integration/test_consumer_gaps.py."""

from types import SimpleNamespace
from typing import Any

import pytest

from streams import agents


def _events(*offsets: int) -> list[Any]:
    return [SimpleNamespace(message=SimpleNamespace(topic="t", offset=o)) for o in offsets]


@pytest.fixture
def dead(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Record dead-lettered events instead of sending them; no waiting between attempts."""
    sent: list[tuple[int, str]] = []

    async def dead_letter(event: Any, error: Any) -> Any:
        sent.append((event.message.offset, error.reason))
        return _done()

    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(agents, "dead_letter", dead_letter)
    monkeypatch.setattr(agents.asyncio, "sleep", no_sleep)
    monkeypatch.setattr(agents.app, "rebalancing", False)
    return sent


async def _done() -> None:
    return None


def _body(poison: set[int], runs: list[list[int]]) -> Any:
    async def body(events: list[Any]) -> Any:
        runs.append([e.message.offset for e in events])
        if poison & {e.message.offset for e in events}:
            raise ValueError("cannot fold")
        return [], None

    return body


async def test_a_batch_that_succeeds_runs_once(dead: list[tuple[int, str]]) -> None:
    runs: list[list[int]] = []
    await agents._settle(_events(1, 2, 3), _body(set(), runs))
    assert runs == [[1, 2, 3]] and dead == []


async def test_a_poison_event_is_retried_isolated_and_dead_lettered_alone(dead: list[tuple[int, str]]) -> None:
    runs: list[list[int]] = []
    await agents._settle(_events(1, 2, 3), _body({2}, runs))
    assert runs == [[1, 2, 3]] * agents.BATCH_ATTEMPTS + [[1], [2], [3]]
    assert dead == [(2, "processing failed: ValueError: cannot fold")]


async def test_a_transient_failure_is_retried_without_dead_lettering(dead: list[tuple[int, str]]) -> None:
    runs: list[list[int]] = []
    failing = {1}

    async def body(events: list[Any]) -> Any:
        runs.append([e.message.offset for e in events])
        if failing:
            failing.clear()
            raise ConnectionError("broker away")
        return [], None

    await agents._settle(_events(1, 2), body)
    assert runs == [[1, 2], [1, 2]] and dead == []


async def test_events_are_withheld_when_not_even_the_dlq_takes_them(
    dead: list[tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def dlq_down(event: Any, error: Any) -> Any:
        raise ConnectionError("DLQ unreachable")

    monkeypatch.setattr(agents, "dead_letter", dlq_down)
    events = _events(1, 2)
    with pytest.raises(ConnectionError):
        await agents._settle(events, _body({1}, []))
    assert [getattr(e.message, "_conductor_withheld", False) for e in events] == [True, False]


async def test_a_failure_during_a_rebalance_withholds_the_batch_without_dead_lettering(
    dead: list[tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agents.app, "rebalancing", True)
    events, runs = _events(1, 2), []
    await agents._settle(events, _body({1}, runs))
    assert runs == [[1, 2]] and dead == []
    assert all(getattr(e.message, "_conductor_withheld", False) for e in events)


async def test_an_infrastructure_failure_is_retried_until_it_passes_never_dead_lettered(
    dead: list[tuple[int, str]],
) -> None:
    from aiokafka.errors import NotEnoughReplicasError
    from faust.exceptions import PartitionsMismatch

    runs: list[list[int]] = []
    # A new changelog topic not yet in the consumer's metadata, then a cluster below min.insync.replicas: more
    # failures than BATCH_ATTEMPTS, none of them the events' fault.
    failures: list[Exception] = [PartitionsMismatch("changelog has 0 partitions")] * 4 + [NotEnoughReplicasError()] * 3

    async def body(events: list[Any]) -> Any:
        runs.append([e.message.offset for e in events])
        if failures:
            raise failures.pop(0)
        return [], None

    await agents._settle(_events(1, 2), body)
    assert runs == [[1, 2]] * 8 and dead == []
