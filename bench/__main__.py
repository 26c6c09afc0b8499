"""`python -m bench` (`make bench`): run every benchmark against its ceilings, on each broker, into bench/out/."""

import argparse
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import phase as phases
from bench import procs, report, worker_bench
from bench.phase import Phase

OUT = Path(__file__).resolve().parent / "out"  # ignored by git: every run writes here
WORKER_BENCHES: dict[str, Callable[[Path, worker_bench.Sizes], dict[str, Any]]] = {
    "projection": worker_bench.projection,
    "resolution": worker_bench.resolution,
    "growth": worker_bench.growth,
}
GATEWAY_BENCHES = ("gateway", "e2e", "push", "throughput")
ALL = (*WORKER_BENCHES, *GATEWAY_BENCHES)


def kafka_available() -> bool:
    """Return whether Apache Kafka can run here (`conductor kafka` needs java and mvn; the jars come on first use)."""
    return shutil.which("java") is not None and shutil.which("mvn") is not None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument(
        "--broker", choices=("embedded", "kafka", "both"), default=None,
        help="broker(s) to run every phase on (default: both when java and mvn are present, else embedded)",
    )  # fmt: skip
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the worker benchmarks' sizes (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each ceiling; the best counts (default 2)")
    parser.add_argument("--out", type=Path, default=OUT, help="results directory (default bench/out, not committed)")
    parser.add_argument("--name", default="latest", help="results file stem (default latest)")
    parser.add_argument(
        "--reference", action="store_true",
        help=f"also make this run the committed reference ({report.REFERENCE}) and regenerate bench/README.md's table",
    )  # fmt: skip
    parser.add_argument("--worker-src", type=Path, help="run workers from another checkout (before/after comparisons)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, stores)")
    parser.add_argument(
        "--profile", action="store_true", help="run workers under py-spy: collapsed stacks, summaries in <out>/profiles"
    )
    return parser.parse_args(argv)


def _brokers(choice: str | None) -> list[str]:
    if choice == "both":
        return ["embedded", "kafka"]
    if choice is not None:
        return [choice]
    if kafka_available():
        return ["embedded", "kafka"]
    print(
        "note: java or mvn not found, so Apache Kafka cannot run here: measuring on the embedded broker only "
        "(apt-get install -y openjdk-17-jdk-headless maven, or `make kafka-tools`, adds the kafka column)"
    )
    return ["embedded"]


def _run_phase(name: str, root: Path, sizes: worker_bench.Sizes) -> dict[str, Any]:
    if name in WORKER_BENCHES:
        return WORKER_BENCHES[name](root, sizes)
    from bench import gateway_bench

    with Phase(name, root) as phase:
        return gateway_bench.BENCHES[name](phase)


def run_on(kind: str, selected: list[str], root: Path, sizes: worker_bench.Sizes) -> dict[str, Any]:
    """Run the `selected` phases, each on a fresh broker of `kind`; return that broker's results."""
    phases.select_broker(kind)
    started = time.monotonic()
    results: dict[str, Any] = {"run": {"broker": kind}, "benchmarks": {}, "errors": {}, "brokers_measured": {}}
    for name in selected:
        print(f"[{kind}: {name}]", flush=True)
        phases.MEASURED.clear()
        phase_started = time.monotonic()
        try:
            results["benchmarks"][name] = _run_phase(name, root / kind, sizes)
            results["benchmarks"][name]["phase_seconds"] = round(time.monotonic() - phase_started, 1)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
        finally:
            procs.stop_all()
        # Every broker this phase started (projection and resolution start one per run), as measured.
        results["brokers_measured"][name] = dict(phases.MEASURED)
    results["run"]["duration_seconds"] = round(time.monotonic() - started, 1)
    return results


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; return 1 if one of them failed to run (a missed goal is not a failure)."""
    args = _parse(argv)
    # Stop our brokers and workers on SIGTERM / SIGHUP too: SystemExit unwinds every phase (atexit runs on it,
    # not on a bare signal); the services and the Kafka JVMs also die with this process (PR_SET_PDEATHSIG).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    # Ctrl-C: our own handler, so asyncio.run() does not install its own, which only cancels the running task (a
    # feed or probe that absorbs the cancellation then loses the interrupt and the run goes on).
    signal.signal(signal.SIGINT, _interrupt)
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    brokers = _brokers(args.broker)
    if args.worker_src:
        procs.WORKER_SRC = args.worker_src.resolve()
    if args.profile:
        procs.PROFILE_DIR = args.out / "profiles"
    sizes = worker_bench.Sizes(repeats=args.repeats).scaled(args.scale)
    root = Path(tempfile.mkdtemp(prefix="conductor-bench-"))
    started = time.monotonic()
    results: dict[str, Any] = {
        "run": {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "python": platform.python_version(),
                "cpus": procs.psutil.cpu_count(),
                "platform": platform.platform(),
            },
            "sizes": sizes.__dict__,
            "worker_src": str(procs.WORKER_SRC),
            "workdir": str(root),
            "brokers": brokers,
            "only": selected,
        },
        "brokers": {},
    }
    print(f"Batch Conductor benchmarks on {' and '.join(brokers)} -> {args.out}/{args.name}.* (work dir {root})",
          flush=True)  # fmt: skip
    try:
        for kind in brokers:
            results["brokers"][kind] = run_on(kind, selected, root, sizes)
            print(f"[{kind}] {results['brokers'][kind]['run']['duration_seconds'] / 60:.1f} min", flush=True)
            if kind != brokers[-1]:  # this broker's figures are safe even if the next pass is interrupted
                report.write({**results, "run": {**results["run"], "duration_seconds": 0.0}}, args.out, args.name)
    except KeyboardInterrupt:
        procs.stop_all()
        print("interrupted: every worker, gateway and broker of this run stopped; nothing written", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        results["run"]["duration_seconds"] = round(time.monotonic() - started, 1)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    paths = report.publish(results, args.out, args.name, reference=args.reference)
    if args.profile:
        from bench import profiles

        paths += profiles.summarize(args.out / "profiles")
    print(report.console_summary(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 1 if any(r["errors"] for r in results["brokers"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
