"""Close a Faust 0.15 gap that lost commands: a partition without a committed offset is never rewound.

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
"""

import logging
from typing import Any

from faust.transport import consumer as faust_consumer

log = logging.getLogger(__name__)


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
