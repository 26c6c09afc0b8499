"""The Faust consumer fixes (streams/faust_fixes.py): the library code they patch is unchanged, and their pure parts.

The integration tests (test_worker_crash.py, test_consumer_gaps.py) show their effect on a real worker and broker.
"""

import hashlib
import importlib
import inspect
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
import pytest
from aiokafka.consumer.subscription_state import TopicPartitionState
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams import faust_fixes
from streams.faust_fixes import head_gap, install_fixes, is_stale, keep_current_acks, known_empty, seek_position

STREAM, CHANGELOG = "huleedu.commands.batch.pipeline.v1", "batch_conductor-batch_state-changelog"

# sha256 (first 16 hex digits) of the source of every library function the fixes patch or rely on, in the pinned
# releases. A new faust-streaming or aiokafka release that changes one fails here: re-read that function against
# docs/faust-consumer-gaps.md (is the gap still there? does the patch still fit?), then update its fingerprint.
FINGERPRINTS = {
    "faust.transport.consumer:Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer:Consumer.seek": "b86a9fe05f956b30",
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.transport.consumer:Consumer._add_gap": "4df2573ded7c1c2c",
    "faust.transport.consumer:Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer:Consumer.on_partitions_revoked": "d04b7ae72c6fc206",
    "faust.transport.drivers.aiokafka:Consumer._to_message": "7c24f6511b2fcef7",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records": "39a2c6c79fc1455a",
    "faust.streams:Stream.take_events": "607d48aead118ba8",
    "faust.streams:Stream._py_aiter": "3a48ee257a65435b",
    "aiokafka.consumer.subscription_state:TopicPartitionState.seek": "c20b56d7ba7b2872",
    "aiokafka.consumer.subscription_state:TopicPartitionState.reset_to": "fc7b535d40c08912",
    "aiokafka.consumer.fetcher:Fetcher.request_offset_reset": "e5bd8ba8838613c9",
    "aiokafka.consumer.fetcher:Fetcher.seek_to": "f0ba6aba6c22ef83",
    "aiokafka.consumer.fetcher:FetchResult.getall": "3e717e30de5068d5",
    "aiokafka.consumer.fetcher:FetchResult.check_assignment": "b5340df67e3f330f",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.seek_to_committed": "f6cd85c8b70a4ccf",
    "aiokafka.consumer.subscription_state:SubscriptionState.reassignment_in_progress": "6876e75ff981ea26",
}


def _original(target: str) -> Any:
    module, qualname = target.split(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, property):
        obj = obj.fget
    return inspect.unwrap(obj)  # past our own wrappers, if installed in this process


@pytest.mark.parametrize("target", sorted(FINGERPRINTS))
def test_patched_library_function_is_the_one_the_fixes_were_written_for(target: str) -> None:
    digest = hashlib.sha256(inspect.getsource(_original(target)).encode()).hexdigest()[:16]
    assert digest == FINGERPRINTS[target], f"{target} changed: check it against docs/faust-consumer-gaps.md"


def test_the_pinned_releases_are_installed() -> None:
    assert (faust.__version__, aiokafka.__version__) == ("0.15.3", "0.14.0")


def test_every_fix_is_active_on_the_worker_consumer_class_once_installed() -> None:
    install_fixes()
    install_fixes()  # idempotent: a second install wraps nothing twice
    consumer = object.__new__(faust_aiokafka.Consumer)
    assert set(faust_fixes.active_fixes(consumer)) == {*faust_fixes.FIXES, "fetch-tracking"}
    chain, method = [], faust_aiokafka.Consumer.getmany
    while method is not None:
        chain.append(getattr(method, "conductor_fix", "faust"))
        method = getattr(method, "__wrapped__", None)
    assert chain == ["head-gap", "stale-fetch", "faust"]  # markers are noted only for records that are delivered


def test_an_unknown_fix_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Faust fix"):
        install_fixes(disabled="refetch")


def test_a_stream_partition_resumes_at_its_committed_offset_or_the_log_start() -> None:
    assert seek_position(12, log_start=0) == 12
    assert seek_position(0, log_start=0) == 0  # aiokafka did not seek to a committed 0, Faust stored it as None
    assert seek_position(None, log_start=5) == 5  # nothing committed
    assert seek_position(3, log_start=7) == 7  # committed below the log start (retention, DeleteRecords)


def test_no_commit_while_the_committed_offset_is_neither_acked_nor_known_empty() -> None:
    assert head_gap([11, 12, 13], committed=10, empty_at_committed=False)  # Faust 0.15 committed 14, losing 10
    assert head_gap([1, 2], committed=0, empty_at_committed=False)  # and never checked at offset 0
    assert not head_gap([11, 12], committed=10, empty_at_committed=True)  # 10 is a marker: commit goes on
    assert not head_gap([10, 11, 13], committed=10, empty_at_committed=False)
    assert not head_gap([5], committed=None, empty_at_committed=False)  # nothing committed: Faust's own rules
    assert not head_gap([], committed=10, empty_at_committed=False)


def _state() -> Any:
    return TopicPartitionState(SimpleNamespace())


class _Message(SimpleNamespace):
    __hash__ = object.__hash__  # Faust keeps unacked messages in a set


def _message(state: Any, epoch: int, empty_from: int | None, offset: int, tp: TP = TP(STREAM, 0)) -> Any:
    return _Message(tp=tp, offset=offset, _conductor_fetch=(state, epoch, empty_from))


def _consumer(state: Any) -> Any:
    assignment = SimpleNamespace(state_value=lambda tp: state)
    subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    return SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_subscription=subscription)))


async def test_a_seek_starts_a_new_epoch_and_the_walk_from_its_position() -> None:
    faust_fixes.install_fetch_tracking()
    state = _state()
    state.reset_to(40)  # first position (the committed offset): the walk starts there
    assert (getattr(state, "_conductor_seek_epoch", 0), state._conductor_next_offset) == (0, 40)
    state._conductor_next_offset = 55  # records fetched up to 54
    state.await_reset(0)
    state.reset_to(90)  # "offset out of range" reset: the walk goes on from 55, the records in between are gone
    assert state._conductor_next_offset == 55
    state.seek(30)
    assert (state._conductor_seek_epoch, state._conductor_next_offset) == (1, 30)


async def test_records_fetched_before_the_latest_seek_or_assignment_are_stale() -> None:
    faust_fixes.install_fetch_tracking()
    state = _state()
    state.seek(10)
    fetched = _message(state, state._conductor_seek_epoch, None, 50)
    assert not is_stale(_consumer(state), fetched)
    state.seek(10)  # Faust's seek to the committed offset after a rebalance
    assert is_stale(_consumer(state), fetched)
    assert is_stale(_consumer(_state()), _message(state, state._conductor_seek_epoch, None, 50))  # old assignment
    assert not is_stale(_consumer(state), SimpleNamespace(tp=TP(STREAM, 0), offset=3))  # untracked: delivered


async def test_offsets_stepped_over_before_a_record_are_known_empty_from_the_committed_offset_on() -> None:
    state = _state()
    assert known_empty(_message(state, 0, 10, 13), committed=10) == (10, 13)  # e.g. markers at 10..12
    assert known_empty(_message(state, 0, 8, 13), committed=10) == (10, 13)
    assert known_empty(_message(state, 0, 13, 13), committed=10) is None
    assert known_empty(_message(state, 0, None, 13), committed=10) is None  # not known: nothing assumed
    assert known_empty(SimpleNamespace(offset=13), committed=None) is None


async def test_a_read_offset_set_across_a_seek_is_undone_so_the_refetched_records_pass_the_guard() -> None:
    faust_fixes.install_fetch_tracking()
    state, tp = _state(), TP(STREAM, 0)
    state.seek(0)
    fetched = [_message(state, state._conductor_seek_epoch, None, offset, tp) for offset in (254, 255)]
    for message in fetched:
        message.topic = STREAM

    async def original(self: Any, timeout: float) -> Any:
        for message in fetched:
            yield tp, message

    consumer: Any = _consumer(state)
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    consumer._read_offset = {tp: 253}
    delivered = []
    # Faust's drain: deliver each message (awaited), then set the read offset to it. A post-rebalance seek to the
    # committed offset 0 happens while 254 is being delivered: the seek clears the read offset, the drain then sets it.
    async for _, message in faust_fixes.drop_stale_fetches(original)(consumer, 1.0):
        delivered.append(message.offset)
        if message.offset == 254:
            state.seek(0)
            consumer._read_offset[tp] = None
        consumer._read_offset[tp] = message.offset
    assert delivered == [254]  # 255 was fetched before the seek: dropped, it comes again
    assert consumer._read_offset.get(tp) is None  # the re-fetch from 0 passes the "already read" guard

    # Without a seek, the drain's read offset stands.
    state.seek(0)
    fetched = [_message(state, state._conductor_seek_epoch, None, offset, tp) for offset in (0, 1)]
    for message in fetched:
        message.topic = STREAM
    async for _, message in faust_fixes.drop_stale_fetches(original)(consumer, 1.0):
        consumer._read_offset[tp] = message.offset
    assert consumer._read_offset[tp] == 1


async def test_after_a_seek_only_acknowledgements_of_records_fetched_since_it_are_kept() -> None:
    from collections import defaultdict

    faust_fixes.install_fetch_tracking()
    state, tp = _state(), TP(STREAM, 0)
    state.seek(100)
    before = state._conductor_seek_epoch
    state.seek(100)  # the post-rebalance seek; the flow runs while the other partitions are sought
    consumer: Any = _consumer(state)
    consumer._acked, consumer._acked_index = defaultdict(list), defaultdict(set)
    consumer._acked[tp] = [100, 101, 120, 121]
    consumer._acked_index[tp] = {100, 101, 120, 121}
    # 120 and 121 were acked before the seek (e.g. skipped in a rebalance), 100 and 101 were fetched after it.
    consumer._conductor_ack_fetch = {
        tp: {100: (state, before + 1), 101: (state, before + 1), 120: (state, before), 121: (_state(), 0)}
    }
    keep_current_acks(consumer, tp)
    assert consumer._acked[tp] == [100, 101]
    assert consumer._acked_index[tp] == {100, 101}
    assert consumer._conductor_ack_fetch[tp] == {100: (state, before + 1), 101: (state, before + 1)}


async def test_the_acknowledgement_of_a_stale_record_does_not_count() -> None:
    from collections import defaultdict

    install_fixes()
    state, tp = _state(), TP(STREAM, 0)
    state.seek(0)
    consumer: Any = _consumer(state)
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    consumer._acked, consumer._acked_index = defaultdict(list), defaultdict(set)
    consumer._committed_offset, consumer._unacked_messages = defaultdict(lambda: None), set()
    consumer._waiting_for_ack, consumer._n_acked = None, 0

    def message(offset: int) -> Any:
        found = _message(state, state._conductor_seek_epoch, None, offset, tp)
        found.topic, found.acked = STREAM, False
        return found

    ack = faust_aiokafka.Consumer.ack
    current, stale = message(5), message(6)
    state.seek(0)
    fresh = message(7)
    assert not ack(consumer, stale) and stale.acked  # done with here, never committable: 6 comes again
    assert ack(consumer, fresh)
    assert consumer._acked[tp] == [7]
    assert consumer._conductor_ack_fetch[tp] == {7: (state, state._conductor_seek_epoch)}
    assert not ack(consumer, current)
