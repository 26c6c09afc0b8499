"""`python -m bench` (`make bench`): run every benchmark against its ceilings and write bench/results/latest.*."""

import argparse
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs, report, worker_bench
from bench.phase import Phase

RESULTS = Path(__file__).resolve().parent / "results"
WORKER_BENCHES: dict[str, Callable[[Path, worker_bench.Sizes], dict[str, Any]]] = {
    "projection": worker_bench.projection,
    "resolution": worker_bench.resolution,
    "growth": worker_bench.growth,
}
GATEWAY_BENCHES = ("gateway", "e2e", "push", "throughput")
ALL = (*WORKER_BENCHES, *GATEWAY_BENCHES)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the worker benchmarks' sizes (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each ceiling; the best counts (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    parser.add_argument("--name", default="latest", help="results file stem (default latest)")
    parser.add_argument("--worker-src", type=Path, help="run workers from another checkout (before/after comparisons)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, stores)")
    parser.add_argument(
        "--profile", action="store_true", help="run workers under py-spy: collapsed stacks, summaries in <out>/profiles"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; return 1 if one of them failed to run (a missed goal is not a failure)."""
    args = _parse(argv)
    # Stop our brokers and workers on SIGTERM too (atexit runs on SystemExit, not on a bare SIGTERM).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
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
        },
        "benchmarks": {},
        "errors": {},
    }
    print(f"Batch Conductor benchmarks -> {args.out}/{args.name}.* (work dir {root})", flush=True)
    for name in selected:
        print(f"[{name}]", flush=True)
        phase_started = time.monotonic()
        try:
            if name in WORKER_BENCHES:
                results["benchmarks"][name] = WORKER_BENCHES[name](root, sizes)
            else:
                from bench import gateway_bench

                with Phase(name, root) as phase:
                    results["benchmarks"][name] = gateway_bench.BENCHES[name](phase)
            results["benchmarks"][name]["phase_seconds"] = round(time.monotonic() - phase_started, 1)
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
        finally:
            procs.stop_all()
    results["run"]["duration_seconds"] = round(time.monotonic() - started, 1)
    paths = report.write(results, args.out, args.name)
    if args.profile:
        from bench import profiles

        paths += profiles.summarize(args.out / "profiles")
    print(report.console_summary(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
