"""The worker's own per-event work without Faust or Kafka, timed and profiled with pyinstrument.

    python -m bench.hotpaths [--events N] [--html DIR]

Runs the projection's and the resolution's pure steps (decode, fold, resolve, build outputs, table value
(de)serialisation) over the benchmark workload in one process and prints µs per event for each, so the worker's
own cost can be told apart from Faust's per-event machinery (which a bare Faust agent measures).
"""

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.workload import Messages, commands, completion_mix, registrations
from contracts.state import BatchRequests, BatchState, BatchStateUpdate
from streams.decoding import decode_command, decode_completion
from streams.resolution import output_events, resolve_request


def _timed(label: str, count: int, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    started = time.perf_counter()
    out = fn()
    results[label] = (time.perf_counter() - started) / count * 1e6
    return out


def run(events: int) -> dict[str, float]:
    """Time each pure step over about `events` events; return µs per event (per command for resolution)."""
    from contracts.pipelines import load_catalog
    from tables.projection import apply_updates, record_request

    catalog = load_catalog(Path("pipelines.yaml"))
    msgs = Messages(seed=3)
    batches = [f"hot-{i}" for i in range(max(1, events // 13))]
    records = completion_mix(msgs, batches, 10)
    us: dict[str, float] = {}

    updates: list[BatchStateUpdate] = _timed(
        "projection: decode_completion", len(records),
        lambda: [decode_completion(r.topic, r.value) for r in records], us,
    )  # fmt: skip
    grouped: dict[str, list[BatchStateUpdate]] = defaultdict(list)
    for update in updates:
        grouped[update.batch_id].append(update)
    from pydantic import TypeAdapter

    adapter = TypeAdapter(list[BatchStateUpdate])
    wire = _timed("projection: re-keyed record dump", len(updates),
                  lambda: [adapter.dump_json(u) for u in grouped.values()], us)  # fmt: skip
    _timed("projection: re-keyed record load", len(updates), lambda: [adapter.validate_json(w) for w in wire], us)
    states: dict[str, BatchState] = _timed(
        "projection: apply_updates (per event)", len(updates),
        lambda: {b: apply_updates(None, u) for b, u in grouped.items()}, us,
    )  # fmt: skip
    stored = _timed("projection: state -> JSON bytes", len(updates),
                    lambda: {b: s.model_dump_json().encode() for b, s in states.items()}, us)  # fmt: skip
    _timed("projection: JSON bytes -> state", len(updates),
           lambda: [BatchState.model_validate_json(v) for v in stored.values()], us)  # fmt: skip

    reg = {r.key.decode(): r for r in registrations(msgs, batches, 10) if r.key}
    state_of = {b: apply_updates(None, [decode_completion(r.topic, r.value)]) for b, r in reg.items()}
    cmds, _ = commands(msgs, batches, events)
    decoded = _timed("resolution: decode_command", len(cmds), lambda: [decode_command(r.value) for r in cmds], us)
    requests: dict[str, BatchRequests | None] = {}

    def resolve_all() -> list[Any]:
        out = []
        for command in decoded:
            data = command.data
            outcome = resolve_request(catalog, data, command.event_timestamp, state_of[data.batch_id])
            requests[data.batch_id] = record_request(requests.get(data.batch_id), data.batch_id, outcome)
            out.append((command, outcome))
        return out

    answered = _timed("resolution: resolve_request + record_request", len(cmds), resolve_all, us)
    _timed("resolution: output_events", len(cmds), lambda: [output_events(c, o) for c, o in answered], us)
    dumped = _timed("resolution: requests -> JSON bytes (per batch)", len(requests),
                    lambda: [r.model_dump_json().encode() for r in requests.values() if r], us)  # fmt: skip
    _timed("resolution: JSON bytes -> requests (per batch)", len(dumped),
           lambda: [BatchRequests.model_validate_json(v) for v in dumped], us)  # fmt: skip
    us["(requests kept per batch, mean)"] = sum(len(r.requests) for r in requests.values() if r) / len(requests)
    return us


def main() -> None:
    """Print µs per event for each step; with --html, also write a pyinstrument profile of the whole run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=13_000)
    parser.add_argument("--html", type=Path, help="write a pyinstrument HTML profile into this directory")
    args = parser.parse_args()
    run(min(args.events, 1000))  # warm up: imports, pydantic schema building
    if args.html:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    us = run(args.events)
    if args.html:
        profiler.stop()
        args.html.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        (args.html / f"hotpaths-{stamp}.html").write_text(profiler.output_html())
        print(profiler.output_text(unicode=True, show_all=False))
    for label, value in us.items():
        print(f"{label:<52} {value:8.1f} µs")


if __name__ == "__main__":
    main()
