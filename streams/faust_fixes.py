"""Close three Faust 0.15 gaps that lost input messages around rebalances and restarts.

1. A partition without a committed offset is never rewound.

After every rebalance Faust seeks the stream partitions "to committed offsets" (`Consumer.perform_seek`), which
rewinds past whatever its consumer fetched and dropped while the rebalance and table recovery ran (faust-streaming
issue #216). A partition that has no committed offset yet is skipped by that seek (aiokafka's
`seek_to_committed` only seeks to offsets it finds), so the records dropped there are gone: the worker goes on
from wherever the fetcher got to, and its next commit makes the skip permanent. Seen here twice, both times on
partitions whose previous owner died before its first commit: a survivor of a two-worker group started one
partition at offset 622 instead of 0 (562 commands never answered), and a worker restarted after `kill -9` skipped
the 24 and 9 commands its predecessor had not finished on two partitions. It is not specific to the embedded
broker.

The fix, after Faust's own seek: every stream partition this worker consumes that has no committed offset is sought
to its earliest offset (what `consumer_auto_offset_reset="earliest"` promises) and that offset is committed at once.
From then on every input partition has a committed offset, so no later owner ever depends on the reset policy.

2. Messages re-fetched after a seek are dropped as "already read".

Faust remembers per partition the offset it last handed to the streams and silently drops any fetched message below
it (`Consumer._drain_messages`, "DROPPED MESSAGE ROFF"). Around a rebalance or restart that guard misfires: records
prefetched before the seek to the committed offset are still handed on after it (faust-streaming issues #216, #221;
here the agents were seen processing before the seek had finished), the remembered offset jumps past the committed
one, and the re-fetched records in between are dropped. Nothing acknowledges them, so the committed offset stops
there and they come back only at the next restart: seen as a batch whose registration never reached the state
(every command for it answered BATCH_NOT_FOUND) and, in CI, as 33 commands unanswered for 3 minutes after a restart.

The fix: for the topics our agents consume with acknowledgements (not the changelogs, whose replay order must hold),
the guard and Faust's gap bookkeeping built on it are off. A message fetched twice is then processed twice, which the
agents are built for (idempotent projection, a redelivered command gets its recorded answer), and the committed
offset still only moves over contiguously acknowledged offsets. The input topics are neither compacted nor
transactional, so their offsets have no gaps for that bookkeeping to bridge.

3. A single unacknowledged record right after the committed offset is committed past.

Faust's commit (`Consumer._new_offset`) refuses to move the committed offset over a gap at the head of the
acknowledged offsets only when the gap is wider than one record (and not at all when the committed offset is 0):
with the committed offset (the next offset to read) at C, C unacknowledged and C+1... acknowledged, it commits past C.
Once re-fetched records are processed (2.), records after C can be acknowledged before C is: one run lost 2
commands that way. The fix: no commit while the lowest acknowledged offset is above the committed one.
"""

import logging
from typing import Any

from faust.transport import consumer as faust_consumer

log = logging.getLogger(__name__)


class _ReadOffsets(dict[Any, int | None]):
    """Faust's last-read offset per partition, reported as unknown for the acked stream topics (see 2. above)."""

    def __init__(self, consumer: Any) -> None:
        super().__init__()
        self._consumer = consumer

    def __missing__(self, tp: Any) -> None:
        return None

    def __getitem__(self, tp: Any) -> int | None:
        if self._consumer.app.topics.acks_enabled_for(tp.topic):
            return None
        return super().get(tp)


def install_refetch_after_seek() -> None:
    """Stop Faust from dropping re-fetched stream messages as already read (the changelogs keep the guard)."""
    consumer_cls: Any = faust_consumer.Consumer
    if getattr(consumer_cls, "_conductor_refetch_after_seek", False):
        return
    original = consumer_cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._read_offset = _ReadOffsets(self)

    consumer_cls.__init__ = __init__
    consumer_cls._conductor_refetch_after_seek = True


def head_gap(acked: list[int], committed: int | None) -> bool:
    """Return whether the acknowledged offsets leave a record unacknowledged at the committed offset."""
    return bool(acked) and committed is not None and min(acked) > committed


def install_no_commit_over_head_gap() -> None:
    """Make Faust's commit wait for the record at the committed offset (see 3. above)."""
    consumer_cls: Any = faust_consumer.Consumer
    if getattr(consumer_cls, "_conductor_no_head_gap", False):
        return
    original = consumer_cls._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        if head_gap(self._acked[tp], self._committed_offset.get(tp)):
            return None
        return original(self, tp)  # type: ignore[no-any-return]

    consumer_cls._new_offset = _new_offset
    consumer_cls._conductor_no_head_gap = True


def _uncommitted_stream_partitions(consumer: Any) -> set[Any]:
    """Return the assigned partitions of acked stream topics that have no committed offset (changelogs excluded)."""
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    return {
        tp
        for tp in consumer.assignment()
        if not consumer._is_changelog_tp(tp)
        and acks_enabled_for(tp.topic)
        and consumer._committed_offset.get(tp) is None
    }


def install_seek_uncommitted_to_earliest() -> None:
    """Make Faust's post-rebalance seek also rewind (and commit) partitions that have no committed offset."""
    consumer_cls: Any = faust_consumer.Consumer
    if getattr(consumer_cls, "_conductor_seek_uncommitted", False):
        return
    original = consumer_cls.perform_seek

    async def perform_seek(self: Any) -> None:
        await original(self)
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return  # only the policy this service runs with (Faust's default) is made exact
        partitions = _uncommitted_stream_partitions(self)
        if not partitions:
            return
        earliest = await self.earliest_offsets(*partitions)
        for tp, offset in earliest.items():
            await self.seek(tp, offset)
        await self._commit_offsets(earliest)
        committed = {f"{tp.topic}[{tp.partition}]": offset for tp, offset in earliest.items()}
        log.info("no committed offset yet: sought to the earliest and committed %s", committed)

    consumer_cls.perform_seek = perform_seek
    consumer_cls._conductor_seek_uncommitted = True


FIXES = {
    "seek-uncommitted": install_seek_uncommitted_to_earliest,
    "refetch": install_refetch_after_seek,
    "head-gap": install_no_commit_over_head_gap,
}


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
