"""Ceiling 1: raw aiokafka consume -> produce of the same events on the same broker (run as a subprocess).

    python -m bench.passthrough --bootstrap HOST:PORT --count N --out TOPIC TOPIC [TOPIC ...]

Reads from the earliest offset with a fresh consumer group, sends every record on to `--out` (acks=all), commits
after each batch is acknowledged (at-least-once, like the worker), and prints one JSON line: the rate between the
first batch and the N-th record acknowledged, measured like the worker's (events after the first observation).
"""

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def run(bootstrap: str, topics: list[str], out: str, count: int, timeout: float) -> dict[str, Any]:
    """Pass `count` records from `topics` to `out`; return the timing."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"bench-passthrough-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1, max_batch_size=256 * 1024)
    await producer.start()
    await consumer.start()
    seen = 0
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            pending = []
            for records in batches.values():
                for record in records:
                    pending.append(await producer.send(out, record.value, key=record.key))
            if not pending:
                continue
            await asyncio.gather(*pending)
            await consumer.commit()
            seen += len(pending)
            if first is None:
                first = (time.monotonic(), seen)
        end = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    assert first is not None, "no records"
    events = seen - first[1]
    return {"events": events, "seconds": end - first[0], "rate": events / (end - first[0]), "seen": seen}


def main() -> None:
    """Parse the flags and print the result as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    result = asyncio.run(run(args.bootstrap, args.topics, args.out, args.count, args.timeout))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
