"""Run the ceilings on the events already in the broker: raw aiokafka passthrough, a bare Faust agent and (the
projection only) the Quix Streams peer."""

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
    argv = [sys.executable, "-m", "bench.bare_faust", "--broker", broker.url, "--count", str(count),
            "--result", str(result_file), *topics]  # fmt: skip
    return _counted("bare Faust agent", argv, result_file, workdir / "bare-faust.log", count, label)


# The Quix Streams peer runs in its own environment (Makefile: .venv-quix from requirements/quix.txt).
QUIX_PYTHON = REPO / ".venv-quix" / "bin" / "python"


def quix(broker: Broker, topics: Sequence[str], count: int, workdir: Path, label: str) -> dict[str, Any]:
    """Run the Quix Streams peer of the projection over `topics` (fresh group and re-key topic); return its timing."""
    if not QUIX_PYTHON.exists():
        raise RuntimeError(f"{QUIX_PYTHON} is missing: `make bench` creates it (requirements/quix.txt)")
    stamp = time.monotonic_ns()
    result_file = workdir / f"quix-{stamp}.json"
    argv = [str(QUIX_PYTHON), "-m", "bench.quix_peer", "--bootstrap", broker.bootstrap, "--count", str(count),
            "--result", str(result_file), "--state-dir", str(workdir / f"quix-{stamp}-state"), *topics]  # fmt: skip
    return _counted("Quix Streams peer", argv, result_file, workdir / "quix-peer.log", count, label)


def _counted(what: str, argv: list[str], result_file: Path, log: Path, count: int, label: str) -> dict[str, Any]:
    """Run a ceiling that writes its progress and, once it counted `count` events, its timing to `result_file`."""
    service = Service(what, argv, {}, log).start()
    progress = Progress(label, count, "events")
    try:
        deadline = time.monotonic() + 180
        while not result_file.exists():
            if not service.alive():
                raise RuntimeError(f"{what} exited:\n{service.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not count {count} events:\n{service.log_tail()}")
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
