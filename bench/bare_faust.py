"""Ceiling 2: a bare Faust agent that only counts the same events, tuned like the worker (run as a subprocess).

    python -m bench.bare_faust --broker kafka://HOST:PORT --count N --result FILE TOPIC [TOPIC ...]

Same Faust release, broker, partitions, poll and buffer settings as the worker (read from the worker's settings),
no tables, no sensors beyond Faust's own. Writes one JSON object to FILE when N events were counted: the rate
between the first counted event and the N-th.
"""

import argparse
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import faust

from streams.settings import WorkerSettings


def build(broker: str, topics: list[str], count: int, result: Path, datadir: Path) -> faust.App:
    """Return the counting app."""
    tuning = WorkerSettings()
    app = faust.App(
        f"bench-bare-{uuid.uuid4().hex[:8]}",
        broker=broker,
        store="memory://",
        datadir=str(datadir),
        autodiscover=False,
        **tuning.consumer_options(),  # the worker's own group and fetch tuning
        value_serializer="raw",
        web_enabled=False,
    )
    source = app.topic(*topics, key_type=bytes, value_type=bytes)
    progress = result.with_suffix(".progress")
    state: dict[str, Any] = {"seen": 0, "first": None, "cpu": 0.0}

    @app.agent(source)
    async def count_events(stream: Any) -> None:
        async for _ in stream:
            state["seen"] += 1
            if state["first"] is None:
                state["first"], state["cpu"] = time.monotonic(), time.process_time()
            if state["seen"] % 1000 == 0:
                progress.write_text(str(state["seen"]))
            if state["seen"] == count:
                seconds = time.monotonic() - state["first"]
                cpu = time.process_time() - state["cpu"]  # every thread of the process
                events = count - 1
                result.write_text(json.dumps({"events": events, "seconds": seconds, "rate": events / seconds,
                                              "cpu_us_per_event": cpu / events * 1e6}))  # fmt: skip

    return app


def main() -> None:
    """Run the counting worker until the bench stops it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    datadir = args.result.parent / f"{args.result.stem}-data"
    app = build(args.broker, args.topics, args.count, args.result, datadir)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None  # Faust's spinner turns the root logger to DEBUG (see streams/worker.py)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
