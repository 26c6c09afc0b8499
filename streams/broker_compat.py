"""Work around the embedded broker (Tansu) under-reporting a partition's end offset.

Tansu answers ListOffsets with the first offset of the partition's last record batch + 1, so when that
batch holds several records Faust's table recovery stops short and silently loses the batch's later
records. Fetch responses are right, so we probe: read from the reported end - 1 and take the offset after
the last record actually returned. Enabled by the `exact_end_offsets` setting (on for local runs,
off against real Kafka, where ListOffsets is exact).
"""

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)

PROBE_IDLE_MS = 300
PROBE_DEADLINE_S = 15.0


async def probe_end_offsets(bootstrap: str, reported: Mapping[Any, int | None]) -> dict[Any, int | None]:
    """Return `reported` end offsets corrected by reading past them (keys kept as given)."""
    result: dict[Any, int | None] = dict(reported)
    probe = {TopicPartition(tp.topic, tp.partition): tp for tp, end in reported.items() if end}
    if not probe:
        return result
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(probe))
        for tp in probe:
            consumer.seek(tp, max(int(reported[probe[tp]] or 0) - 1, 0))
        deadline = time.monotonic() + PROBE_DEADLINE_S
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=PROBE_IDLE_MS)
            if not batches:
                break
            for tp, records in batches.items():
                key = probe[tp]
                result[key] = max(int(result[key] or 0), records[-1].offset + 1)
    finally:
        await consumer.stop()
    corrected = {tp: (reported[tp], end) for tp, end in result.items() if end != reported[tp]}
    if corrected:
        log.warning("end offsets corrected past the broker's report: %s", corrected)
    return result


def install_exact_end_offsets(bootstrap: str) -> None:
    """Make Faust's highwater look-ups (table recovery) exact on the embedded broker."""
    thread_cls: Any = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, "_conductor_exact_end_offsets", False):
        return
    original = thread_cls._highwaters

    async def _highwaters(self: Any, partitions: Any) -> Mapping[Any, int | None]:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported  # type: ignore[no-any-return]
        return await probe_end_offsets(bootstrap, reported)

    thread_cls._highwaters = _highwaters
    thread_cls._conductor_exact_end_offsets = True


# Tansu answers a fetch with nothing new only when the fetch's wait runs out, even if records arrive meanwhile
# (measured: a record produced to an idle consumer arrived after ~615 ms with Faust's fixed 1500 ms wait, after
# 1.5-7 ms with 10 ms, ~16 ms with 200 ms). Apache Kafka answers as soon as records arrive: the short wait, which
# costs an idle worker a few empty fetches a second, is for the embedded broker only (profile local).
EMBEDDED_FETCH_MAX_WAIT_MS = 5


def install_short_fetch_wait(max_wait_ms: int = EMBEDDED_FETCH_MAX_WAIT_MS) -> None:
    """Make the worker's consumer wait at most `max_wait_ms` in a fetch (Faust hard-codes 1500 ms)."""
    thread_cls: Any = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, "_conductor_short_fetch_wait", False):
        return
    original = thread_cls._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read when the consumer starts its fetcher
        return consumer

    thread_cls._create_worker_consumer = _create_worker_consumer
    thread_cls._conductor_short_fetch_wait = True
