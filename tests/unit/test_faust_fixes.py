"""The Faust consumer fixes' pure parts (streams/faust_fixes.py); the integration tests cover their effect."""

from types import SimpleNamespace

from faust.types import TP

from streams.faust_fixes import _ReadOffsets, _uncommitted_stream_partitions, head_gap

STREAM, CHANGELOG = "huleedu.commands.batch.pipeline.v1", "batch_conductor-batch_state-changelog"


def _consumer(committed: dict[TP, int | None], assigned: set[TP]) -> SimpleNamespace:
    topics = SimpleNamespace(acks_enabled_for=lambda topic: topic == STREAM)
    return SimpleNamespace(
        app=SimpleNamespace(topics=topics),
        assignment=lambda: assigned,
        _is_changelog_tp=lambda tp: tp.topic == CHANGELOG,
        _committed_offset=committed,
    )


def test_read_offsets_of_stream_topics_read_as_unknown_so_refetched_messages_are_not_dropped() -> None:
    offsets = _ReadOffsets(_consumer({}, set()))
    offsets[TP(STREAM, 0)] = 41
    offsets[TP(CHANGELOG, 0)] = 7
    assert offsets[TP(STREAM, 0)] is None
    assert offsets[TP(CHANGELOG, 0)] == 7  # changelog replay keeps Faust's guard
    assert offsets[TP(CHANGELOG, 1)] is None  # unknown partitions read as None, as in Faust's defaultdict
    offsets.update({TP(CHANGELOG, 1): 3})
    assert offsets.pop(TP(CHANGELOG, 1)) == 3


def test_only_assigned_stream_partitions_without_a_committed_offset_are_rewound() -> None:
    assigned = {TP(STREAM, 0), TP(STREAM, 1), TP(STREAM, 2), TP(CHANGELOG, 0)}
    consumer = _consumer({TP(STREAM, 0): 12, TP(STREAM, 1): None}, assigned)
    assert _uncommitted_stream_partitions(consumer) == {TP(STREAM, 1), TP(STREAM, 2)}


def test_no_commit_while_the_record_at_the_committed_offset_is_unacknowledged() -> None:
    assert head_gap([11, 12, 13], committed=10)  # Faust 0.15 committed 14 here, losing 10
    assert head_gap([1, 2], committed=0)  # and did not check at all when the committed offset is 0
    assert not head_gap([10, 11, 13], committed=10)
    assert not head_gap([5], committed=None)  # nothing committed yet: Faust's own rules apply
    assert not head_gap([], committed=10)
