"""Turn a run's figures into goals met or missed, latest.json, latest.md and the latency histogram PNG."""

import itertools
import json
from pathlib import Path
from typing import Any

# (benchmark, goal as printed, value key, comparison, target, unit)
GOALS: list[tuple[str, str, str, str, float, str]] = [
    ("gateway", "gateway POST req/s / bare FastAPI req/s", "gateway_ratio", ">=", 0.7, "ratio"),
    ("gateway", "gateway POST (auth none) req/s / bare FastAPI req/s", "gateway_none_ratio", ">=", 0.7, "ratio"),
    ("projection", "projection events/s / aiokafka passthrough", "projection_vs_passthrough", ">=", 0.25, "ratio"),
    ("projection", "projection events/s / bare Faust agent", "projection_vs_bare", ">=", 0.8, "ratio"),
    ("projection", "projection events/s / Quix Streams peer", "projection_vs_quix", ">=", 1.0, "ratio"),
    ("resolution", "resolution commands/s / aiokafka passthrough", "resolution_vs_passthrough", ">=", 0.15, "ratio"),
    ("resolution", "resolution commands/s / bare Faust agent", "resolution_vs_bare", ">=", 0.5, "ratio"),
    ("e2e", "end to end p50 at 200 req/s", "e2e_p50_ms", "<=", 25.0, "ms"),
    ("e2e", "end to end p99 at 200 req/s", "e2e_p99_ms", "<=", 100.0, "ms"),
    ("growth", "events/s with 100k batches / with 1k batches", "growth_ratio", ">=", 0.8, "ratio"),
    # 1,000 open streams. State change = the worker's table write; the gateway measures write -> change queued to
    # its streams (a histogram: the value is the upper edge of the bucket holding the percentile).
    ("push", "push: worker write -> change at the gateway streams, p50", "push_lag_p50_ms", "<=", 50.0, "ms"),
    ("push", "push: worker write -> change at the gateway streams, p99", "push_lag_p99_ms", "<=", 250.0, "ms"),
    # The same changes as the client sees them from its POST (adds the POST, Kafka and the worker's resolution).
    ("push", "push: POST -> resolved event at the client, p50", "push_p50_ms", "<=", 50.0, "ms"),
    ("push", "push: POST -> resolved event at the client, p99", "push_p99_ms", "<=", 250.0, "ms"),
    # 1,000 req/s for 30 s, open loop, through one gateway (jwt) and two workers (bench/throughput.py).
    ("throughput", "throughput: requests not answered at 1,000 req/s", "throughput_unanswered", "<=", 0.0, "req"),
    ("throughput", "throughput: POST -> resolved event at 1,000 req/s, p99", "throughput_p99_ms", "<=", 250.0, "ms"),
    ("run", "whole run", "run_minutes", "<", 10.0, "min"),
]


def _value(results: dict[str, Any], key: str) -> float | None:
    b = results["benchmarks"]
    try:
        if key == "gateway_ratio":
            return float(b["gateway"]["gateway"]["rps"] / b["gateway"]["bare"]["rps"])
        if key == "gateway_none_ratio":
            return float(b["gateway"]["gateway_none"]["rps"] / b["gateway"]["bare"]["rps"])
        if key.startswith("throughput_"):
            return float(b["throughput"]["goals"][key])
        if key.startswith(("projection_", "resolution_")):
            name, _, ceiling = key.partition("_vs_")
            ceiling = "bare_faust" if ceiling == "bare" else ceiling
            return float(b[name]["subject"]["rate"] / b[name][ceiling]["rate"])
        if key in ("e2e_p50_ms", "e2e_p99_ms"):
            return float(b["e2e"]["latency_ms"][key.split("_")[1]])
        if key == "growth_ratio":
            return float(b["growth"]["at_large"]["rate"] / b["growth"]["at_small"]["rate"])
        if key in ("push_lag_p50_ms", "push_lag_p99_ms"):
            return float(b["push"]["push_lag"][f"{key.split('_')[2]}_ms_at_most"])
        if key in ("push_p50_ms", "push_p99_ms"):
            return float(b["push"]["changes"]["latency_ms"][key.split("_")[1]])
        if key == "run_minutes":
            return float(results["run"]["duration_seconds"] / 60)
    except (KeyError, ZeroDivisionError, TypeError):
        return None
    raise KeyError(key)


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every goal with its measured value and whether it is met (None when not measured)."""
    out = []
    for bench, label, key, op, target, unit in GOALS:
        value = _value(results, key)
        met = None
        if value is not None:
            met = value >= target if op == ">=" else value <= target if op == "<=" else value < target
        out.append({"benchmark": bench, "goal": label, "key": key, "value": value, "op": op, "target": target,
                    "unit": unit, "met": met})  # fmt: skip
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:.2f}" if unit in ("ratio", "min") else f"{value:.1f} {unit}"


def _target(g: dict[str, Any]) -> str:
    return f"{g['op']} {g['target']:g}" + ("" if g["unit"] == "ratio" else f" {g['unit']}")


def _rate(d: dict[str, Any] | None) -> str:
    return f"{d['rate']:,.0f}/s" if d else "-"


def facts(results: dict[str, Any]) -> list[str]:
    """Return the figures that have no goal but are asked for (memory, recovery, latencies), one line each."""
    b, out = results["benchmarks"], []
    if "growth" in b:
        g = b["growth"]
        small, large = g["at_small"], g["at_large"]
        out.append(
            f"state growth, worker CPU per event: {small['cpu_us_per_event']:.0f} µs with {g['batches_small']:,} "
            f"batches, {large['cpu_us_per_event']:.0f} µs with {g['batches_large']:,} (cost ratio "
            f"{small['cpu_us_per_event'] / large['cpu_us_per_event']:.2f}; the goal above is on events/s)"
        )
        out.append(f"worker memory per 10,000 batches: {g['rss_per_10k_batches_bytes'] / 2**20:.1f} MiB")
        out.append(
            f"recovery of {g['batches_large']:,} batches from the changelog into a fresh store: "
            f"{g['recovery_seconds']:.1f} s (ready after {g['recovered_ready_seconds']:.1f} s; empty start "
            f"{g['empty_start_seconds']:.1f} s)"
        )
    if "push" in b:
        p = b["push"]
        out.append(
            f"push, {p['opened']:,} open streams: gateway memory {p['gateway_bytes_per_stream'] / 1024:.1f} KiB per "
            f"stream; worker CPU for the waiting long-polls {p['worker_long_poll_cpu_percent']:.1f}% of a core "
            f"(idle {p['worker_idle_cpu_percent']:.1f}%, streams open {p['worker_waiting_cpu_percent']:.1f}%); "
            f"gateway CPU with the streams idle {p['gateway_waiting_cpu_percent']:.1f}%; worker write -> gateway "
            f"event p50 <= {p['push_lag']['p50_ms_at_most']} ms, p99 <= {p['push_lag']['p99_ms_at_most']} ms "
            "(histogram bucket edges)"
        )
    if "gateway" in b:
        gw, bare = b["gateway"]["gateway"], b["gateway"]["bare"]
        out.append(
            f"gateway POST: {gw['rps']:,.0f} req/s, p50 {gw['p50_ms']:.1f} ms, p99 {gw['p99_ms']:.1f} ms "
            f"(bare FastAPI {bare['rps']:,.0f} req/s, p50 {bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms)"
        )
        if "gateway_none" in b["gateway"]:
            out.append(_cpu_line(b["gateway"]))
    if "throughput" in b:
        from bench.throughput import summary_lines

        out += summary_lines(b["throughput"])
    return out


def _cpu_line(gw: dict[str, Any]) -> str:
    none = gw["gateway_none"]
    cpu = ", ".join(f"{k} {gw[k].get('cpu_us_per_request', 0):.0f} µs" for k in ("gateway", "gateway_none", "bare"))
    return f"gateway POST, auth none: {none['rps']:,.0f} req/s, p50 {none['p50_ms']:.1f} ms; CPU per request: {cpu}"


def console_summary(results: dict[str, Any]) -> str:
    """Return the goals as lines for the terminal: every ratio next to its goal."""
    lines = ["", f"{'goal':<54} {'measured':>14}  {'target':<10}"]
    for g in goals(results):
        mark = {True: "met", False: "MISSED", None: "-"}[g["met"]]
        lines.append(f"{g['goal']:<54} {_fmt(g['value'], g['unit']):>14}  {_target(g):<10} {mark}")
    lines += ["", *facts(results)]
    for name, error in results.get("errors", {}).items():
        lines.append(f"{name}: FAILED TO RUN: {error}")
    return "\n".join(lines)


def _figures(results: dict[str, Any]) -> list[str]:
    b, out = results["benchmarks"], []
    for name in ("projection", "resolution"):
        if name not in b:
            continue
        r = b[name]
        s, pt, bare = r["subject"], r["passthrough"], r["bare_faust"]
        out += [
            f"**{name}** ({r['events']:,} events in the broker before the subject consumes them; best of "
            f"{len(s['runs'])} runs each):",
            f"- worker {_rate(s)} (runs {s['runs']}), {s['cpu_us_per_event']:.0f} µs of worker CPU per event "
            "(all its threads)",
            f"- aiokafka passthrough {_rate(pt)} (runs {pt['runs']})",
            f"- bare Faust agent {_rate(bare)} (runs {bare['runs']}), {bare.get('cpu_us_per_event', 0):.0f} µs "
            "of CPU per event",
            "",
        ]
    if "growth" in b:
        g = b["growth"]
        out += [
            f"**state growth**: {_rate(g['at_small'])} with {g['batches_small']:,} batches in the tables, "
            f"{_rate(g['at_large'])} with {g['batches_large']:,} (the same workload: spellcheck completions for "
            f"{g['at_small']['fed'] // 10:,} batches); registering batches ran at {_rate(g['registration'])}. "
            f"Worker memory {g['rss_small_bytes'] / 2**20:.0f} MiB -> {g['rss_large_bytes'] / 2**20:.0f} MiB. "
            f"Recovery checked: {g['recovery_checked_batches']} sampled batch views identical before and after.",
            "",
        ]
    if "gateway" in b:
        gw = b["gateway"]
        out += [
            f"**gateway POST** (wrk, 1 thread, {gw['connections']} connections, {gw['seconds']} s; non-2xx: gateway "
            f"{gw['gateway']['non_2xx']}, bare {gw['bare']['non_2xx']}).",
            "",
        ]
    if "e2e" in b:
        e = b["e2e"]
        lat = e["latency_ms"]
        out += [
            f"**end to end** (HTTP POST -> resolved event read by a consumer; {e['target_rps']} req/s for "
            f"{e['seconds']} s, {e['requests']:,} requests, achieved {e['achieved_rps']:.0f} req/s, "
            f"{e['answered']:,} answered): p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms, "
            f"max {lat['max']:.1f} ms. Slowest answer per second of the run (ms): {e['max_ms_by_second']}.",
            "",
        ]
    return out


def markdown(results: dict[str, Any], before: dict[str, Any] | None) -> str:
    """Return the human summary."""
    run = results["run"]
    out = [
        "# Batch Conductor benchmarks",
        "",
        f"Run {run['started_at']} on {run['machine']['cpus']} CPUs, Python {run['machine']['python']}, "
        f"{run['duration_seconds'] / 60:.1f} min in all. Each figure is a ratio to a ceiling measured in the same run "
        "(these machines are shared and noisy). How each is measured, what blocks the goals missed and what "
        "would lift them: [bench/README.md](../README.md). Reproduce: `make bench`.",
        "",
        "## Goals",
        "",
        "| benchmark | goal | measured | target | |",
        "|---|---|---|---|---|",
    ]
    for g in goals(results):
        mark = {True: "met", False: "**missed**", None: "not measured"}[g["met"]]
        out.append(f"| {g['benchmark']} | {g['goal']} | {_fmt(g['value'], g['unit'])} | {_target(g)} | {mark} |")
    for name, error in results.get("errors", {}).items():
        out.append(f"| {name} | failed to run | {error} | | **error** |")
    out += ["", *[f"- {line}" for line in facts(results)], "", "## Figures", "", *_figures(results)]
    if before:
        out += _before_after(before, results)
    out += ["![latency histograms](latency.png)", ""]
    return "\n".join(out)


def _before_after(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    rows = [
        "## Before / after",
        "",
        "The same harness with the worker run from the commit before the optimisations (`python -m bench "
        "--worker-src <checkout> --name before`, results in `before.json`) and from this tree:",
        "",
        "| goal | before | after |",
        "|---|---|---|",
    ]
    old = {g["key"]: g for g in goals(before)}
    for g in goals(after):
        prev = old.get(g["key"])
        if prev and prev["value"] is not None and g["key"] not in ("run_minutes", "gateway_ratio"):
            rows.append(f"| {g['goal']} | {_fmt(prev['value'], g['unit'])} | {_fmt(g['value'], g['unit'])} |")
    for name in ("projection", "resolution"):
        if name in before["benchmarks"] and name in after["benchmarks"]:
            then, now = before["benchmarks"][name]["subject"], after["benchmarks"][name]["subject"]
            rows.append(f"| {name} worker rate | {_rate(then)} | {_rate(now)} |")
            cpu = f"{then['cpu_us_per_event']:.0f} µs | {now['cpu_us_per_event']:.0f} µs"
            rows.append(f"| {name} worker CPU per event | {cpu} |")
    return [*rows, "", f"Before: run of {before['run']['started_at']}.", ""]


def histogram(results: dict[str, Any], path: Path) -> Path | None:
    """Draw the latency histograms (end to end; gateway vs bare FastAPI percentiles) into `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = results["benchmarks"]
    panels = [name for name in ("e2e", "gateway") if name in b]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        if name == "e2e":
            e = b["e2e"]
            edges, counts = e["histogram"]["edges_ms"], e["histogram"]["counts"]
            widths = [right - left for left, right in itertools.pairwise(edges)]
            ax.bar(edges[:-1], counts, width=widths, align="edge")
            for q, style in (("p50", "--"), ("p99", ":")):
                ax.axvline(e["latency_ms"][q], color="k", linestyle=style, label=f"{q} {e['latency_ms'][q]:.1f} ms")
            ax.set_xscale("log")
            ax.set_xlabel("latency (ms, log scale)")
            ax.set_ylabel("requests")
            ax.set_title(f"End to end: POST -> resolved event read ({e['target_rps']} req/s)")
        else:
            gw = b["gateway"]
            for label in ("gateway", "bare"):
                pts = gw[label]["percentiles_ms"]
                ax.plot([p for p, _ in pts], [v for _, v in pts], marker=".",
                        label=f"{label} ({gw[label]['rps']:,.0f} req/s)")  # fmt: skip
            ax.set_yscale("log")
            ax.set_xlabel("percentile")
            ax.set_ylabel("latency (ms, log scale)")
            ax.set_title(f"POST latency under wrk, {gw['connections']} connections")
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(results: dict[str, Any], out: Path, name: str) -> list[Path]:
    """Write `<name>.json`, `<name>.md` and the latency PNG; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "goals": goals(results)}
    before_path = out / "before.json"
    before = json.loads(before_path.read_text()) if before_path.exists() and name != "before" else None
    paths = [out / f"{name}.json", out / f"{name}.md"]
    paths[0].write_text(json.dumps(results, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(results, before))
    png = histogram(results, out / ("latency.png" if name == "latest" else f"{name}-latency.png"))
    return paths + ([png] if png else [])
