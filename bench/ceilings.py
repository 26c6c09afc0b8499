"""Run the two ceilings on the events already in the broker: raw aiokafka passthrough and a bare Faust agent."""

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.observe import Progress
from bench.procs import REPO, Service
from conductor.brokers import Broker

PASSTHROUGH_OUT = "bench.passthrough.out"


def passthrough(broker: Broker, topics: Sequence[str], count: int, label: str) -> dict[str, Any]:
    """Run the aiokafka passthrough over `topics` (fresh consumer group); return its timing."""
    progress = Progress(label, count, "msgs")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.passthrough", "--bootstrap", broker.bootstrap, "--count", str(count),
         "--out", PASSTHROUGH_OUT, *topics],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"passthrough failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    progress.done(result["seen"], f"{result['rate']:,.0f} msg/s")
    return result


def bare_faust(broker: Broker, topics: Sequence[str], count: int, workdir: Path, label: str) -> dict[str, Any]:
    """Run the bare counting Faust agent over `topics` (fresh app id); return its timing."""
    result_file = workdir / f"bare-{time.monotonic_ns()}.json"
    service = Service(
        "bare-faust",
        [sys.executable, "-m", "bench.bare_faust", "--broker", broker.url, "--count", str(count),
         "--result", str(result_file), *topics],
        {},
        workdir / "bare-faust.log",
    ).start()  # fmt: skip
    progress = Progress(label, count, "events")
    try:
        deadline = time.monotonic() + 180
        while not result_file.exists():
            if not service.alive():
                raise RuntimeError(f"bare Faust agent exited:\n{service.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare Faust agent did not count {count} events:\n{service.log_tail()}")
            progress_file = result_file.with_suffix(".progress")
            if progress_file.exists():
                progress.update(float(progress_file.read_text() or 0))
            time.sleep(0.2)
        time.sleep(0.05)
        result: dict[str, Any] = json.loads(result_file.read_text())
    finally:
        service.stop()
    progress.done(count, f"{result['rate']:,.0f} events/s, {result['cpu_us_per_event']:.0f} µs CPU/event")
    return result
