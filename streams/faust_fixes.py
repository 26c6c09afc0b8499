"""Close the Faust 0.15 / aiokafka 0.14 consumer gaps that lost or stalled input records around seeks and rebalances.

docs/faust-consumer-gaps.md gives each gap's reproduction, mechanism and upstream issue. Each fix applies to the topics
the agents consume with acknowledgements (not the changelogs, whose replay keeps Faust's rules):

1. `seek-uncommitted`: after Faust's post-rebalance seek, a partition with no committed offset, or one below the
   log start (retention, DeleteRecords), is sought to the log start and that offset is committed at once. aiokafka's
   `seek_to_committed` skips committed offsets of 0 and absent ones (aio-libs/aiokafka#1003), so such a partition
   went on from wherever the fetcher had got to while the rebalance dropped what it fetched.
2. `stale-fetch`: a record fetched before its partition's latest seek, or under an earlier assignment, is dropped
   before Faust's "already read" guard sees it; it is fetched again from the new position. Faust handed such records
   to the streams after the seek (faust-streaming #216, #221): the guard's read offset jumped past the committed one
   and the re-fetched records in between were dropped. The guard and Faust's gap bookkeeping stay on. A record that
   was current when handed on but whose delivery the drain was still awaiting when a seek came (a second
   post-rebalance seek while the flow runs) has its read offset undone after the drain set it, for the same reason.
3. `head-gap`: the committed offset moves only over offsets that are acknowledged or known to hold no record. The
   fetcher knows the latter exactly: the offsets it stepped over between the position it fetched from and the records
   it returned (transaction markers, compacted or deleted records). Faust guessed them from its read offset, one off
   after a seek, so it let one unacknowledged record at the committed offset through (faust-streaming #606, #380).
4. `withhold-ack`: `withhold_acks(events)` keeps Faust from counting events as processed when an agent could not
   process them: `Stream.take_events` acks its batch in a `finally`, even when the agent body raised.
"""

import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer import subscription_state as aiokafka_subscription
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)

_EPOCH = "_conductor_seek_epoch"  # on aiokafka's TopicPartitionState: bumped by every seek
_NEXT = "_conductor_next_offset"  # on the same: the offset up to which the fetcher has stepped in this epoch
_FETCH = "_conductor_fetch"  # on a record and its Faust message: (state, epoch, first offset known empty before it)
_WITHHELD = "_conductor_withheld"  # on a Faust message: its agent did not process it

Consumer: Any = faust_consumer.Consumer
AIOKafkaConsumer: Any = faust_aiokafka.Consumer
TopicPartitionState: Any = aiokafka_subscription.TopicPartitionState
Fetcher: Any = aiokafka_fetcher.Fetcher
FetchResult: Any = aiokafka_fetcher.FetchResult


def _patch(owner: Any, name: str, fix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace `owner.name` by the decorated function (given the original), once; tag it with the fix's name."""

    def decorate(make: Callable[..., Any]) -> Callable[..., Any]:
        original = getattr(owner, name)
        if fix in _fixes_in(original):
            return original  # type: ignore[no-any-return]
        replacement = make(original)
        replacement.conductor_fix = fix
        replacement.__wrapped__ = original
        setattr(owner, name, replacement)
        return replacement  # type: ignore[no-any-return]

    return decorate


def _fixes_in(method: Any) -> set[str]:
    """Return the fixes a (possibly patched) method runs, walking its chain of wrappers."""
    found = set()
    while method is not None:
        fix = getattr(method, "conductor_fix", None)
        if fix:
            found.add(fix)
        method = getattr(method, "__wrapped__", None)
    return found


# --- the fetcher's side (aiokafka, in Faust's consumer thread): seek epochs and the offsets stepped over ---


def install_fetch_tracking(fix: str = "fetch-tracking") -> None:
    """Tag every fetched record with its partition's seek epoch and the offsets the fetcher stepped over before it."""

    @_patch(TopicPartitionState, "seek", fix)
    def _seek(original: Any) -> Any:
        def seek(self: Any, position: int) -> None:
            original(self, position)
            setattr(self, _EPOCH, getattr(self, _EPOCH, 0) + 1)
            setattr(self, _NEXT, position)

        return seek

    @_patch(TopicPartitionState, "reset_to", fix)
    def _reset_to(original: Any) -> Any:
        def reset_to(self: Any, position: int) -> None:
            original(self, position)
            # A first position (committed offset or reset policy) starts the walk. After "offset out of range" the
            # walk goes on from where it was: the records in between are gone (retention, DeleteRecords).
            if getattr(self, _NEXT, None) is None:
                setattr(self, _NEXT, position)

        return reset_to

    @_patch(Fetcher, "request_offset_reset", fix)
    def _request_offset_reset(original: Any) -> Any:
        def request_offset_reset(self: Any, tps: Iterable[Any], strategy: Any) -> Any:
            tps = list(tps)
            assignment = self._subscriptions.subscription.assignment
            for tp in tps:  # an explicit seek to the beginning or end: a new epoch, position unknown until reset_to
                state = assignment.state_value(tp)
                setattr(state, _EPOCH, getattr(state, _EPOCH, 0) + 1)
                setattr(state, _NEXT, None)
            return original(self, tps, strategy)

        return request_offset_reset

    @_patch(FetchResult, "getall", fix)
    def _getall(original: Any) -> Any:
        def getall(self: Any, max_records: int | None = None) -> list[Any]:
            assignment = self._assignment
            state = assignment.state_value(self._topic_partition) if assignment.active else None
            records: list[Any] = original(self, max_records)
            if records and state is not None:
                epoch, walked = getattr(state, _EPOCH, 0), getattr(state, _NEXT, None)
                for record in records:
                    empty_from = walked if walked is not None and walked < record.offset else None
                    setattr(record, _FETCH, (state, epoch, empty_from))
                    walked = record.offset + 1
                setattr(state, _NEXT, walked)
            return records

        return getall

    @_patch(AIOKafkaConsumer, "_to_message", fix)
    def _to_message(original: Any) -> Any:
        def to_message(self: Any, tp: Any, record: Any) -> Any:
            message = original(self, tp, record)
            setattr(message, _FETCH, getattr(record, _FETCH, None))
            return message

        return to_message


def _current_state(consumer: Any, tp: Any) -> Any:
    """Return aiokafka's state object of an assigned partition (None when not assigned)."""
    try:
        return consumer._thread._consumer._subscription.subscription.assignment.state_value(tp)
    except (AttributeError, KeyError):
        return None


def is_stale(consumer: Any, message: Any) -> bool:
    """Return whether `message` was fetched before its partition's latest seek or under an earlier assignment."""
    fetch = getattr(message, _FETCH, None)
    if fetch is None:
        return False
    state, epoch, _ = fetch
    return state is not _current_state(consumer, message.tp) or getattr(state, _EPOCH, 0) != epoch


def known_empty(message: Any, committed: int | None) -> tuple[int, int] | None:
    """Return the offsets [begin, end) before `message` known to hold no record, from the committed offset on."""
    fetch = getattr(message, _FETCH, None)
    if fetch is None or fetch[2] is None:
        return None
    begin = fetch[2] if committed is None else max(fetch[2], committed)
    return (begin, message.offset) if begin < message.offset else None


# --- 1. seek-uncommitted ---


def _stream_partitions(consumer: Any) -> set[Any]:
    """Return the assigned partitions of acked stream topics (changelogs excluded)."""
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    return {tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp) and acks_enabled_for(tp.topic)}


def _reassigning(consumer: Any) -> bool:
    """Return whether aiokafka is between a revocation and the next assignment."""
    try:
        return bool(consumer._thread._consumer._subscription.reassignment_in_progress)
    except AttributeError:
        return False


def to_rewind(committed: dict[Any, int | None], earliest: dict[Any, int]) -> dict[Any, int]:
    """Return the partitions to seek to their log start: no committed offset, or one below the log start."""
    return {
        tp: start for tp, start in earliest.items() if committed.get(tp) is None or committed[tp] < start  # type: ignore[operator]
    }


def install_seek_uncommitted_to_earliest(fix: str = "seek-uncommitted") -> None:
    """Make Faust's post-rebalance seek also rewind (and commit) partitions without a valid committed offset."""

    @_patch(Consumer, "perform_seek", fix)
    def _perform_seek(original: Any) -> Any:
        async def perform_seek(self: Any) -> None:
            await original(self)
            if self.app.conf.consumer_auto_offset_reset != "earliest":
                return  # only the policy this service runs with (Faust's default) is made exact
            if _reassigning(self):
                # Faust's getmany also seeks when a rebalance stops the flow mid-fetch: the assignment is not settled
                # then, and a commit there could wait on the consumer thread that the rebalance holds. The seek
                # after the assignment and recovery does it.
                return
            partitions = _stream_partitions(self)
            if not partitions:
                return
            targets = to_rewind(dict(self._committed_offset), dict(await self.earliest_offsets(*partitions)))
            if not targets:
                return
            for tp, offset in targets.items():
                await self.seek(tp, offset)
            await self._commit_offsets(targets)
            log.info(
                "no committed offset, or one below the log start: sought to the log start and committed %s",
                {f"{tp.topic}[{tp.partition}]": offset for tp, offset in targets.items()},
            )

        return perform_seek


# --- 2. stale-fetch ---


def drop_stale_fetches(original: Any) -> Any:
    """Wrap Faust's `Consumer.getmany`: drop stale records of acked topics, and undo a read offset set across a seek."""

    async def getmany(self: Any, timeout: float) -> Any:
        acks_enabled_for = self.app.topics.acks_enabled_for
        async for tp, message in original(self, timeout):
            if not acks_enabled_for(message.topic):
                yield tp, message
                continue
            if is_stale(self, message):
                self._conductor_stale_dropped = getattr(self, "_conductor_stale_dropped", 0) + 1
                continue
            yield tp, message
            # Faust's drain awaits the delivery of this message (`wait_first(callback(message), ...)`) and only then
            # sets the read offset to it. A seek during that await set the read offset for the re-fetch, and the drain
            # then overwrote it with this older epoch's offset: the "already read" guard would drop every re-fetched
            # record below it, and they are never fetched again. Undo that write (None: nothing read since the seek).
            if is_stale(self, message) and self._read_offset.get(tp) == message.offset:
                self._read_offset.pop(tp, None)
                log.debug("read offset of %s reset: offset %s was delivered across a seek", tp, message.offset)

    return getmany


def install_drop_stale_fetches(fix: str = "stale-fetch") -> None:
    """Drop records fetched before their partition's latest seek, before Faust's "already read" guard sees them."""
    install_fetch_tracking()

    _patch(Consumer, "getmany", fix)(drop_stale_fetches)

    @_patch(Consumer, "perform_seek", fix)
    def _perform_seek(original: Any) -> Any:
        async def perform_seek(self: Any) -> None:
            await original(self)
            # Everything from the committed offsets on comes again: forget acknowledgements recorded before the seek
            # (Faust's streams ack the records they skip during a rebalance as if processed).
            for tp in _stream_partitions(self):
                self._acked.pop(tp, None)
                self._acked_index.pop(tp, None)
                self._gap.pop(tp, None)

        return perform_seek


# --- 3. head-gap ---


def head_gap(acked: list[int], committed: int | None, empty_at_committed: bool) -> bool:
    """Return whether the record at the committed offset is neither acknowledged nor known to hold no record."""
    return bool(acked) and committed is not None and min(acked) > committed and not empty_at_committed


def install_no_commit_over_head_gap(fix: str = "head-gap") -> None:
    """Commit only over acknowledged offsets and offsets the fetcher stepped over (no record there)."""
    install_fetch_tracking()

    @_patch(Consumer, "getmany", fix)
    def _getmany(original: Any) -> Any:
        async def getmany(self: Any, timeout: float) -> Any:
            acks_enabled_for = self.app.topics.acks_enabled_for
            async for tp, message in original(self, timeout):
                if acks_enabled_for(message.topic):
                    empty = known_empty(message, self._committed_offset.get(tp))
                    if empty is not None:
                        gaps = self._gap[tp]
                        gaps.addi(*empty)
                        gaps.merge_overlaps()
                yield tp, message

        return getmany

    @_patch(Consumer, "_add_gap", fix)
    def _add_gap(original: Any) -> Any:
        async def add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
            # Faust's range ends with the record being delivered, which is not processed yet: leave it out.
            await original(self, tp, offset_from, offset_to - 1)

        return add_gap

    @_patch(Consumer, "_new_offset", fix)
    def _new_offset(original: Any) -> Any:
        def new_offset(self: Any, tp: Any) -> int | None:
            committed = self._committed_offset.get(tp)
            acked = self._acked[tp]
            if committed is not None and head_gap(acked, committed, bool(self._gap[tp].at(committed))):
                return None
            return original(self, tp)  # type: ignore[no-any-return]

        return new_offset


# --- 4. withhold-ack ---


def withhold_acks(events: Iterable[Any]) -> None:
    """Mark events their agent did not process: their acknowledgement will not let Faust commit them."""
    for event in events:
        setattr(event.message, _WITHHELD, True)


def install_withhold_ack(fix: str = "withhold-ack") -> None:
    """Make Faust's consumer ignore the acknowledgement of withheld messages (their offsets stay uncommitted)."""

    @_patch(Consumer, "ack", fix)
    def _ack(original: Any) -> Any:
        def ack(self: Any, message: Any) -> bool:
            if getattr(message, _WITHHELD, False):
                message.acked = True  # done with it here (shutdown does not wait for it), never committable
                self._unacked_messages.discard(message)
                return False
            return original(self, message)  # type: ignore[no-any-return]

        return ack


FIXES: dict[str, Callable[[], None]] = {
    "seek-uncommitted": install_seek_uncommitted_to_earliest,
    "stale-fetch": install_drop_stale_fetches,
    "head-gap": install_no_commit_over_head_gap,
    "withhold-ack": install_withhold_ack,
}


def active_fixes(consumer: Any) -> list[str]:
    """Return the fixes whose patches this consumer's class actually runs (walking each patched method's wrappers)."""
    found: set[str] = set()
    for name in ("perform_seek", "getmany", "_new_offset", "_add_gap", "ack", "_to_message"):
        found |= _fixes_in(getattr(type(consumer), name, None))
    return sorted(found - {"report"})


def install_report() -> None:
    """Log, at the first seek of a real consumer, which fixes it runs."""

    @_patch(Consumer, "perform_seek", "report")
    def _perform_seek(original: Any) -> Any:
        async def perform_seek(self: Any) -> None:
            if not getattr(self, "_conductor_reported", False):
                self._conductor_reported = True
                log.info("Faust consumer fixes active on %s: %s", type(self).__name__, ",".join(active_fixes(self)))
            await original(self)

        return perform_seek


def install_fixes(disabled: str = "") -> None:
    """Install every fix except those named in `disabled` (comma-separated; diagnostics only)."""
    left_out = {name.strip() for name in disabled.split(",") if name.strip()}
    unknown = left_out - FIXES.keys()
    if unknown:
        raise ValueError(f"unknown Faust fix(es) {sorted(unknown)}; known: {sorted(FIXES)}")
    for name, install in FIXES.items():
        if name in left_out:
            log.warning("Faust consumer fix %r left out (diagnostics only): input may be lost", name)
        else:
            install()
    install_report()
