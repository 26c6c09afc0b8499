"""Explain the figures that differ by more than 30 % between the brokers, from what the same run measured.

Each figure is split into what it is made of (a rate and its CPU per event, a ratio and its ceiling, a latency and
the broker's produce and delivery times measured by the phase's probe, bench/broker_probe.py) and the line names
the parts that moved: nothing here is a constant about either broker.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

THRESHOLD = 0.30  # a figure "differs" when the larger value is more than 30 % above the smaller
Results = dict[str, Any]


def differs(a: float | None, b: float | None, threshold: float = THRESHOLD) -> bool:
    """Return whether `a` and `b` differ by more than `threshold` (relative to the smaller magnitude)."""
    if a is None or b is None:
        return False
    low, high = sorted((abs(a), abs(b)))
    if low == 0:
        return high > 0
    return round(high / low - 1, 9) > threshold  # 130 vs 100 is 30 %, not 30.000000000000004 %


def change(a: float, b: float) -> str:
    """Return the change from `a` to `b` as a signed percentage ("+42 %")."""
    return f"{(b - a) / a * 100:+.0f} %" if a else "n/a"


def _get(res: Results, *path: str) -> Any:
    node: Any = res
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _both(e: Results, k: Results, *path: str) -> tuple[Any, Any]:
    return _get(e, "benchmarks", *path), _get(k, "benchmarks", *path)


def probe(res: Results, bench: str) -> dict[str, Any] | None:
    """Return the broker probe of `bench`'s (first) phase."""
    measured = _get(res, "brokers_measured", bench) or {}
    for phase in measured.values():
        if isinstance(phase, dict) and "probe" in phase:
            return {**phase["probe"], "cpu_percent": phase.get("cpu_percent")}
    return None


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "?"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "%":
        return f"{value:.0f} %"
    return f"{value:,.2f}"


def _pair(label: str, a: float | None, b: float | None, unit: str) -> str:
    moved = f" ({change(a, b)})" if a is not None and b is not None else ""
    return f"{label} {_num(a, unit)} -> {_num(b, unit)}{moved}"


def broker_line(e: Results, k: Results, bench: str) -> str:
    """Return the phase's broker figures side by side: acks=all produce, delivery to a waiting consumer, CPU."""
    pe, pk = probe(e, bench), probe(k, bench)
    if not pe or not pk:
        return "(no broker probe for this phase)"
    return "; ".join(
        [
            _pair("acks=all produce p50", pe["produce_ms"]["p50"], pk["produce_ms"]["p50"], "ms"),
            _pair("delivery to a waiting consumer p50", pe["delivery_ms"]["p50"], pk["delivery_ms"]["p50"], "ms"),
            _pair("broker CPU over the phase (% of a core)", pe["cpu_percent"], pk["cpu_percent"], "%"),
        ]
    )


def rate_reason(label: str, e: dict[str, Any] | None, k: dict[str, Any] | None) -> str:
    """Explain a rate's change by CPU per event (work) or by the cores it kept busy (waiting)."""
    if not e or not k or "rate" not in e or "rate" not in k:
        return f"{label}: not measured on both"
    text = _pair(label, e["rate"], k["rate"], "/s")
    if "cpu_us_per_event" not in e or "cpu_us_per_event" not in k:
        return text
    ce, ck = e["cpu_us_per_event"], k["cpu_us_per_event"]
    busy_e, busy_k = e["rate"] * ce / 1e4, k["rate"] * ck / 1e4  # % of a core: events/s x CPU s per event
    text += f", {_pair('CPU per event', ce, ck, 'µs')}, {_pair('busy', busy_e, busy_k, '%')} of a core"
    if differs(e["rate"], k["rate"]):
        if differs(ce, ck, 0.15) and (ck > ce) == (k["rate"] < e["rate"]):
            text += ": the CPU per event moved with it (more or less work per event)"
        else:
            slower = "kafka" if k["rate"] < e["rate"] else "embedded"
            text += (
                f": CPU per event moved less than the rate, so on {slower} the worker spent more of the time waiting "
                "(not working) between batches"
            )
    return text


@dataclass(frozen=True)
class Figure:
    """A figure compared between the brokers: how to read it and how to explain a difference."""

    key: str
    label: str
    unit: str
    value: Callable[[Results], float | None]
    explain: Callable[[Results, Results], str]


def _ratio_explainer(bench: str, ceiling: str, ceiling_label: str) -> Callable[[Results, Results], str]:
    def explain(e: Results, k: Results) -> str:
        subject = rate_reason("worker", *_both(e, k, bench, "subject"))
        ceil = rate_reason(ceiling_label, *_both(e, k, bench, ceiling))
        return f"{subject}. {ceil}. Broker: {broker_line(e, k, bench)}."

    return explain


def _rate_explainer(bench: str, *path: str, label: str = "worker") -> Callable[[Results, Results], str]:
    def explain(e: Results, k: Results) -> str:
        reason = rate_reason(label, _get(e, "benchmarks", bench, *path), _get(k, "benchmarks", bench, *path))
        return f"{reason}. Broker: {broker_line(e, k, bench)}."

    return explain


def _latency_explainer(bench: str, pct: str, hops: int, what: str) -> Callable[[Results, Results], str]:
    """A latency along a path with `hops` acks=all produces and as many deliveries to a waiting consumer."""

    def explain(e: Results, k: Results) -> str:
        pe, pk = probe(e, bench), probe(k, bench)
        if not pe or not pk:
            return "(no broker probe for this phase)"
        q = "p99" if pct == "p99" else "p50"
        broker_e = hops * (pe["produce_ms"][q] + pe["delivery_ms"][q])
        broker_k = hops * (pk["produce_ms"][q] + pk["delivery_ms"][q])
        return (
            f"{what} takes {hops} acks=all produce(s) and {hops} delivery(ies) to a waiting consumer; measured by "
            f"the phase's probe ({q}): {_pair('produce', pe['produce_ms'][q], pk['produce_ms'][q], 'ms')}, "
            f"{_pair('delivery', pe['delivery_ms'][q], pk['delivery_ms'][q], 'ms')}, so the broker's share is "
            f"{_num(broker_e, 'ms')} -> {_num(broker_k, 'ms')}; "
            f"{_pair('broker CPU (% of a core)', pe['cpu_percent'], pk['cpu_percent'], '%')}"
        )

    return explain


def _gateway_explainer(e: Results, k: Results) -> str:
    ge, gk = _get(e, "benchmarks", "gateway", "gateway"), _get(k, "benchmarks", "gateway", "gateway")
    be, bk = _get(e, "benchmarks", "gateway", "bare"), _get(k, "benchmarks", "gateway", "bare")
    if not (ge and gk and be and bk):
        return "not measured on both"
    return (
        f"{_pair('gateway', ge['rps'], gk['rps'], '/s')} ({_pair('p50', ge['p50_ms'], gk['p50_ms'], 'ms')}), "
        f"{_pair('bare FastAPI (no broker)', be['rps'], bk['rps'], '/s')}; each POST waits for one acks=all produce: "
        f"{broker_line(e, k, 'gateway')}"
    )


def _growth_explainer(e: Results, k: Results) -> str:
    small = rate_reason("at 1k", *_both(e, k, "growth", "at_small"))
    large = rate_reason("at 100k", *_both(e, k, "growth", "at_large"))
    return f"{small}. {large}. Broker: {broker_line(e, k, 'growth')}."


def _push_lag_explainer(e: Results, k: Results) -> str:
    pe, pk = _get(e, "benchmarks", "push") or {}, _get(k, "benchmarks", "push") or {}
    return (
        "no broker on this path (the worker's long-poll answer over HTTP to the gateway); measured alongside: "
        + _pair("worker CPU with the streams open", pe.get("worker_waiting_cpu_percent"),
                pk.get("worker_waiting_cpu_percent"), "%")
        + ", " + _pair("gateway CPU", pe.get("gateway_waiting_cpu_percent"), pk.get("gateway_waiting_cpu_percent"), "%")
        + f"; broker: {broker_line(e, k, 'push')}"
    )  # fmt: skip


def _run_explainer(e: Results, k: Results) -> str:
    def starts(res: Results) -> float:
        return sum(
            float(phase.get("start_seconds", 0.0))
            for measured in (_get(res, "brokers_measured") or {}).values()
            for phase in measured.values()
        )

    phases = [
        (name, _get(e, "benchmarks", name, "phase_seconds"), _get(k, "benchmarks", name, "phase_seconds"))
        for name in (_get(e, "benchmarks") or {})
    ]
    moved = sorted((p for p in phases if p[1] and p[2]), key=lambda p: -abs(p[2] - p[1]))[:3]
    parts = ", ".join(f"{name} {a:.0f} -> {b:.0f} s" for name, a, b in moved)
    return f"broker start-ups {starts(e):.0f} -> {starts(k):.0f} s in all; the phases that moved most: {parts}"


def _v(*path: str) -> Callable[[Results], float | None]:
    def value(res: Results) -> float | None:
        got = _get(res, "benchmarks", *path)
        return float(got) if isinstance(got, int | float) else None

    return value


FIGURES: list[Figure] = [
    Figure("projection_rate", "projection: worker events/s", "/s", _v("projection", "subject", "rate"),
           _rate_explainer("projection", "subject")),
    Figure("projection_bare_rate", "projection: bare Faust agent events/s", "/s",
           _v("projection", "bare_faust", "rate"),
           _rate_explainer("projection", "bare_faust", label="bare Faust agent")),
    Figure("projection_passthrough_rate", "projection: aiokafka passthrough msg/s", "/s",
           _v("projection", "passthrough", "rate"),
           _rate_explainer("projection", "passthrough", label="aiokafka passthrough")),
    Figure("resolution_rate", "resolution: worker commands/s", "/s", _v("resolution", "subject", "rate"),
           _rate_explainer("resolution", "subject")),
    Figure("resolution_bare_rate", "resolution: bare Faust agent events/s", "/s",
           _v("resolution", "bare_faust", "rate"),
           _rate_explainer("resolution", "bare_faust", label="bare Faust agent")),
    Figure("resolution_passthrough_rate", "resolution: aiokafka passthrough msg/s", "/s",
           _v("resolution", "passthrough", "rate"),
           _rate_explainer("resolution", "passthrough", label="aiokafka passthrough")),
    Figure("growth_small_rate", "growth: events/s with 1k batches", "/s", _v("growth", "at_small", "rate"),
           _rate_explainer("growth", "at_small")),
    Figure("growth_large_rate", "growth: events/s with 100k batches", "/s", _v("growth", "at_large", "rate"),
           _rate_explainer("growth", "at_large")),
    Figure("growth_recovery", "growth: recovery seconds", "s", _v("growth", "recovery_seconds"),
           lambda e, k: f"recovery reads every changelog record back: {broker_line(e, k, 'growth')}"),
    Figure("gateway_rps", "gateway POST req/s", "/s", _v("gateway", "gateway", "rps"), _gateway_explainer),
    Figure("e2e_p50", "end to end p50", "ms", _v("e2e", "latency_ms", "p50"),
           _latency_explainer("e2e", "p50", 2, "POST -> resolved event")),
    Figure("e2e_p99", "end to end p99", "ms", _v("e2e", "latency_ms", "p99"),
           _latency_explainer("e2e", "p99", 2, "POST -> resolved event")),
    Figure("push_p50", "push: POST -> resolved event p50", "ms", _v("push", "changes", "latency_ms", "p50"),
           _latency_explainer("push", "p50", 2, "POST -> resolved event on the stream")),
    Figure("push_p99", "push: POST -> resolved event p99", "ms", _v("push", "changes", "latency_ms", "p99"),
           _latency_explainer("push", "p99", 2, "POST -> resolved event on the stream")),
]  # fmt: skip

# Goals (bench/report.py GOALS keys) explained by the figures they are made of.
GOAL_EXPLAINERS: dict[str, Callable[[Results, Results], str]] = {
    "projection_vs_passthrough": _ratio_explainer("projection", "passthrough", "aiokafka passthrough"),
    "projection_vs_bare": _ratio_explainer("projection", "bare_faust", "bare Faust agent"),
    "resolution_vs_passthrough": _ratio_explainer("resolution", "passthrough", "aiokafka passthrough"),
    "resolution_vs_bare": _ratio_explainer("resolution", "bare_faust", "bare Faust agent"),
    "gateway_ratio": _gateway_explainer,
    "growth_ratio": _growth_explainer,
    "e2e_p50_ms": _latency_explainer("e2e", "p50", 2, "POST -> resolved event"),
    "e2e_p99_ms": _latency_explainer("e2e", "p99", 2, "POST -> resolved event"),
    "push_p50_ms": _latency_explainer("push", "p50", 2, "POST -> resolved event on the stream"),
    "push_p99_ms": _latency_explainer("push", "p99", 2, "POST -> resolved event on the stream"),
    "push_lag_p50_ms": _push_lag_explainer,
    "push_lag_p99_ms": _push_lag_explainer,
    "run_minutes": _run_explainer,
}


def explain_goal(key: str, e: Results, k: Results) -> str:
    """Return why goal `key` differs between the embedded (`e`) and Kafka (`k`) results."""
    explainer = GOAL_EXPLAINERS.get(key)
    if explainer is None:
        return f"no breakdown for this goal in the harness yet; the broker: {broker_line(e, k, key.split('_')[0])}"
    return explainer(e, k)


def differing_figures(e: Results, k: Results) -> list[str]:
    """Return one line per figure (not a goal) that differs by more than 30 % between the brokers, explained."""
    lines = []
    for fig in FIGURES:
        a, b = fig.value(e), fig.value(k)
        if differs(a, b):
            assert a is not None and b is not None
            lines.append(f"{fig.label}: embedded {_num(a, fig.unit)}, kafka {_num(b, fig.unit)} "
                         f"({change(a, b)}). {fig.explain(e, k)}")  # fmt: skip
    return lines
