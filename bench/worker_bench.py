"""Worker benchmarks: projection, resolution, state growth, memory and recovery, each against ceilings run alike.

How throughput is measured (the same for every subject): the events are in the broker before the subject starts
consuming them (fed before it starts, or while it is SIGSTOPped), and the rate is taken between the first
observation of progress and the last event done: (N - done at first observation) / elapsed. The worker's progress
is read from its own Prometheus counters (`conductor_worker_state_updates_total`: events folded into the
`batch_state` table; `conductor_worker_events_total{outcome="resolved"}`: commands whose answers were handed to the
producer); the ceilings time themselves.
"""

import asyncio
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench import ceilings
from bench.observe import Drain, Progress, counter_reader, time_drain
from bench.phase import Phase
from bench.procs import Worker
from bench.workload import Messages, Record, commands, completion_mix, essays_of, feed, registrations
from contracts.topics import COMPLETION_TOPICS, Topic

STATE_UPDATES = "conductor_worker_state_updates_total"
EVENTS = "conductor_worker_events_total"


@dataclass(frozen=True)
class Sizes:
    """How much each worker benchmark feeds."""

    projection_batches: int = 2000  # x (essays + 3) completion events
    essays: int = 10
    resolution_batches: int = 5000  # ~3 commands per batch, as clients ask (a batch keeps its 50 latest)
    commands: int = 15_000
    growth_small: int = 1_000
    growth_large: int = 100_000
    growth_workload_batches: int = 1_000  # x essays spellcheck completions, per measurement
    repeats: int = 2  # ceilings: best of this many runs

    def scaled(self, factor: float) -> "Sizes":
        """Return sizes multiplied by `factor` (at least 1 of each)."""
        return Sizes(
            projection_batches=max(50, int(self.projection_batches * factor)),
            essays=self.essays,
            resolution_batches=max(50, int(self.resolution_batches * factor)),
            commands=max(500, int(self.commands * factor)),
            growth_small=max(100, int(self.growth_small * factor)),
            growth_large=max(1000, int(self.growth_large * factor)),
            growth_workload_batches=max(100, int(self.growth_workload_batches * factor)),
            repeats=self.repeats,
        )


def _best(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    best = dict(max(runs, key=lambda r: r["rate"]))
    best["runs"] = [round(r["rate"], 1) for r in runs]
    return best


def _ceilings(
    phase: Phase, topics: Sequence[str], count: int, what: str, repeats: int, quix: bool = False
) -> dict[str, Any]:
    """Measure the ceilings on the `count` events in `topics` (a warm-up passthrough first); with `quix`, the Quix
    Streams peer of the projection too."""
    ceilings.passthrough(phase.broker, topics, count, f"{what}: passthrough warm-up")
    passthrough = [
        ceilings.passthrough(phase.broker, topics, count, f"{what}: passthrough #{i + 1}") for i in range(repeats)
    ]
    bare = [
        ceilings.bare_faust(phase.broker, topics, count, phase.workdir, f"{what}: bare Faust agent #{i + 1}")
        for i in range(repeats)
    ]
    result = {"passthrough": _best(passthrough), "bare_faust": _best(bare)}
    if quix:
        peer = [
            ceilings.quix(phase.broker, topics, count, phase.workdir, f"{what}: Quix Streams peer #{i + 1}")
            for i in range(repeats)
        ]
        result["quix"] = _best(peer)
    return result


def _settle(worker: Worker, timeout: float = 20.0) -> float:
    """Wait until the worker is idle (under 30% of a core for a second: changelog and store writes flushed; an
    idle worker spends ~17% on the embedded broker's short fetches); return the seconds waited."""
    started = time.monotonic()
    quiet = 0
    last = worker.cpu_seconds()
    while quiet < 2 and time.monotonic() - started < timeout:
        time.sleep(0.5)
        now = worker.cpu_seconds()
        quiet = quiet + 1 if now - last < 0.15 else 0
        last = now
    return time.monotonic() - started


def _paused_drain(
    worker: Worker, bootstrap: str, records: Sequence[Record], what: str, unit: str, name: str, **labels: str
) -> dict[str, Any]:
    """Feed `records` while the worker is SIGSTOPped (it then starts on a full backlog, as if they were fed before
    it started), resume it and time it working them off, by its counter `name`."""
    read = counter_reader(f"{worker.url}/metrics", name, **labels)
    settled = _settle(worker)
    baseline = read()
    progress = Progress(f"{what}: feed (worker paused, idle after {settled:.1f} s)", len(records), "msgs")
    worker.pause()
    try:
        feed(bootstrap, records, progress.update)
        progress.done(len(records))
        cpu = worker.cpu_seconds()
    finally:
        worker.resume()
    target = len(records)
    drain = time_drain(read, target, 600, Progress(what, target, unit), baseline=baseline, alive=worker.alive)
    return _figures(drain, target, worker.cpu_seconds() - cpu)


def _figures(drain: Drain, fed: int, cpu: float) -> dict[str, Any]:
    return {
        "events": drain.events,
        "seconds": drain.seconds,
        "rate": drain.rate,
        "fed": fed,
        "worker_cpu_seconds": cpu,
        "cpu_us_per_event": cpu / fed * 1e6,
    }


def _feed(bootstrap: str, records: Sequence[Record], label: str) -> None:
    progress = Progress(label, len(records), "msgs")
    feed(bootstrap, records, progress.update)
    progress.done(len(records))


def _view(client: httpx.Client, worker: Worker, batch: str) -> Any:
    response = client.get(f"{worker.url}/batches/{batch}")
    return response.json() if response.status_code == 200 else response.status_code


def _check_projection(worker: Worker, batches: Sequence[str], essays: int) -> list[str]:
    """Return what is wrong with a sample of the projected batches (the expected outcome of completion_mix)."""
    failed_spell = sum(1 for j in range(essays) if j % 10 == 9)
    expected = {
        "spellcheck": ("failed" if failed_spell else "completed", essays - failed_spell, failed_spell),
        "nlp": ("completed", essays, 0),
        "cj_assessment": ("failed", essays - 1, 1),  # a failed essay and none pending: the step failed
    }
    problems = []
    with httpx.Client(timeout=10, headers=worker.headers) as client:
        for batch in random.Random(1).sample(list(batches), min(40, len(batches))):
            view = _view(client, worker, batch)
            if not isinstance(view, dict) or not view["registered"]:
                problems.append(f"{batch}: {view!r:.200}")
                continue
            steps = {s["step"]: (s["status"], s["succeeded"], s["failed"]) for s in view["steps"]}
            problems.extend(
                f"{batch} {step}: {steps.get(step)} != {want}"
                for step, want in expected.items()
                if steps.get(step) != want
            )
    return problems


def _project_once(
    phase: Phase, batches: Sequence[str], records: Sequence[Record], sizes: Sizes, run: str
) -> dict[str, Any]:
    _feed(phase.broker.bootstrap, records, f"projection {run}: feed completion events")
    worker = phase.worker()
    worker.start()
    worker.wait_http(f"{worker.url}/metrics", 120)
    read = counter_reader(f"{worker.url}/metrics", STATE_UPDATES)
    cpu = worker.cpu_seconds()
    progress = Progress(f"projection {run}: worker -> batch_state", len(records), "events")
    drain = time_drain(read, len(records), 600, progress, alive=worker.alive)
    subject = _figures(drain, len(records), worker.cpu_seconds() - cpu)
    problems = _check_projection(worker, batches, sizes.essays)
    worker.stop()
    if problems:
        raise AssertionError("projection produced wrong state:\n" + "\n".join(problems[:10]))
    return subject


def projection(root: Path, sizes: Sizes) -> dict[str, Any]:
    """Completion events/s through one worker into the tables vs passthrough and bare Faust on the same events.

    Each run of the worker gets a fresh broker holding the same events (the topic names are fixed, so a second
    worker on the same broker would also read the first one's re-keyed records); the ceilings run on the last.
    """
    batches = [f"proj-{i}" for i in range(sizes.projection_batches)]
    records = completion_mix(Messages(seed=11), batches, sizes.essays)
    runs = []
    result: dict[str, Any] = {
        "events": len(records),
        "mean_event_bytes": round(sum(len(r.value) for r in records) / len(records)),
    }
    for i in range(sizes.repeats):
        with Phase(f"projection-{i + 1}", root) as phase:
            runs.append(_project_once(phase, batches, records, sizes, f"#{i + 1}"))
            if i == sizes.repeats - 1:
                result.update(_ceilings(phase, COMPLETION_TOPICS, len(records), "projection", sizes.repeats, quix=True))
    result["subject"] = _best(runs)
    return result


async def _count_outputs(bootstrap: str, expected: int, timeout: float = 60) -> dict[str, int]:
    """Count the resolved / failed answers on the output topics (earliest to the last one expected)."""
    consumer = AIOKafkaConsumer(
        Topic.PIPELINE_RESOLVED,
        Topic.PIPELINE_RESOLUTION_FAILED,
        Topic.PHASE_SKIPPED,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    counts = {str(Topic.PIPELINE_RESOLVED): 0, str(Topic.PIPELINE_RESOLUTION_FAILED): 0, str(Topic.PHASE_SKIPPED): 0}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                counts[tp.topic] += len(records)
            answered = counts[Topic.PIPELINE_RESOLVED] + counts[Topic.PIPELINE_RESOLUTION_FAILED]
            if answered >= expected and not batches:
                break
    finally:
        await consumer.stop()
    return counts


def _resolve_once(phase: Phase, sizes: Sizes, run: str) -> tuple[dict[str, Any], int]:
    msgs = Messages(seed=13)
    batches = [f"res-{i}" for i in range(sizes.resolution_batches)]
    half = len(batches) // 2
    state = registrations(msgs, batches[:half], sizes.essays, spellchecked=True)
    state += registrations(msgs, batches[half:], sizes.essays)
    worker = phase.worker()
    worker.start_ready()
    _feed(phase.broker.bootstrap, state, f"resolution {run}: register batches")
    progress = Progress(f"resolution {run}: project registrations", len(state), "events")
    time_drain(counter_reader(f"{worker.url}/metrics", STATE_UPDATES), len(state), 300, progress)
    cmds, _ = commands(msgs, batches, sizes.commands)
    subject = _paused_drain(
        worker, phase.broker.bootstrap, cmds, f"resolution {run}: worker -> answers", "commands",
        EVENTS, topic=str(Topic.PIPELINE_COMMAND), outcome="resolved",
    )  # fmt: skip
    worker.stop()
    outputs = asyncio.run(_count_outputs(phase.broker.bootstrap, len(cmds)))
    if outputs[Topic.PIPELINE_RESOLVED] != len(cmds):
        raise AssertionError(f"expected {len(cmds)} resolved events, got {outputs}")
    subject["outputs"] = outputs
    return subject, len(cmds)


def resolution(root: Path, sizes: Sizes) -> dict[str, Any]:
    """Commands/s through one worker (command in, answer out) vs passthrough and bare Faust on the same commands.

    Each run gets a fresh broker: batches registered (half with spellcheck done, so answers carry skipped phases
    too), then the commands fed while the worker is paused.
    """
    runs = []
    result: dict[str, Any] = {}
    for i in range(sizes.repeats):
        with Phase(f"resolution-{i + 1}", root) as phase:
            subject, count = _resolve_once(phase, sizes, f"#{i + 1}")
            runs.append(subject)
            if i == sizes.repeats - 1:
                result.update(_ceilings(phase, [Topic.PIPELINE_COMMAND], count, "resolution", sizes.repeats))
    result["events"] = count
    result["subject"] = _best(runs)
    return result


def _spellchecks(msgs: Messages, batches: Sequence[str], essays: int) -> list[Record]:
    records = [msgs.spellcheck(b, e, at=1 + j) for b in batches for j, e in enumerate(essays_of(b, essays))]
    msgs.rng.shuffle(records)
    return records


def _views(worker: Worker, batches: Sequence[str]) -> dict[str, Any]:
    with httpx.Client(timeout=10, headers=worker.headers) as client:
        return {b: _view(client, worker, b) for b in batches}


def growth(root: Path, sizes: Sizes) -> dict[str, Any]:
    """Per-event cost with few vs many batches in the tables, memory per 10k batches, recovery from the changelog."""
    with Phase("growth", root) as phase:
        return _growth(phase, sizes)


def _growth(phase: Phase, sizes: Sizes) -> dict[str, Any]:
    msgs = Messages(seed=17)
    small = [f"grow-{i}" for i in range(sizes.growth_small)]
    large = [f"grow-{i}" for i in range(sizes.growth_small, sizes.growth_large)]
    worker = phase.worker()
    empty_start = worker.start_ready()
    updates = counter_reader(f"{worker.url}/metrics", STATE_UPDATES)

    def register(batches: Sequence[str], label: str) -> dict[str, Any]:
        records = registrations(msgs, batches, sizes.essays)
        return _paused_drain(
            worker, phase.broker.bootstrap, records, f"growth: register {label}", "batches", STATE_UPDATES
        )

    def workload(pool: Sequence[str], label: str) -> dict[str, Any]:
        chosen = random.Random(label).sample(list(pool), sizes.growth_workload_batches)
        records = _spellchecks(msgs, chosen, sizes.essays)
        return _paused_drain(
            worker, phase.broker.bootstrap, records, f"growth: spellchecks, {label}", "events", STATE_UPDATES
        )

    register(small, f"{len(small):,} batches")
    time.sleep(1.0)
    rss_small = worker.rss_bytes()
    at_small = workload(small, f"{len(small):,} batches in tables")
    registered_large = register(large, f"{len(large):,} more batches")
    time.sleep(1.0)
    rss_large = worker.rss_bytes()
    at_large = workload(large, f"{len(small) + len(large):,} batches in tables")
    total = len(small) + len(large)
    sample = random.Random(5).sample([*small, *large], 50)
    before = _views(worker, sample)
    updates_before = updates()
    worker.stop()

    progress = Progress(f"recovery: {total:,} batches into a fresh store", None, "")
    shutil.rmtree(worker.data_dir)
    recovered = phase.worker("worker-recovered")
    ready = recovered.start_ready(timeout=300)
    after = _views(recovered, sample)
    progress.done(total, f"ready after {ready:.1f}s (empty start {empty_start:.1f}s)")
    recovered.stop()
    if after != before:
        wrong = [b for b in sample if after[b] != before[b]]
        raise AssertionError(f"recovered state differs for {len(wrong)} of {len(sample)} sampled batches: {wrong[:5]}")
    return {
        "batches_small": len(small),
        "batches_large": total,
        "at_small": at_small,
        "at_large": at_large,
        "registration": registered_large,
        "rss_small_bytes": rss_small,
        "rss_large_bytes": rss_large,
        "rss_per_10k_batches_bytes": (rss_large - rss_small) / (len(large) / 10_000),
        "state_updates": updates_before,
        "empty_start_seconds": empty_start,
        "recovered_ready_seconds": ready,
        "recovery_seconds": max(0.0, ready - empty_start),
        "recovery_checked_batches": len(sample),
    }
