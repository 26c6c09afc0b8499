"""The benchmark report (bench/report.py, bench/compare.py): goals side by side per broker, differences explained,
and the reference run written only on purpose. Pure: synthetic results, temporary directories, no processes."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench import compare, report


def _rate(rate: float, cpu_us: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": rate, "runs": [rate], "events": 1000, "seconds": 1000 / rate, "fed": 1000}
    if cpu_us is not None:
        out["cpu_us_per_event"] = cpu_us
    return out


def _probe(produce: float, delivery: float, cpu: float) -> dict[str, Any]:
    return {
        "broker": "x",
        "start_seconds": 1.0,
        "cpu_percent": cpu,
        "probe": {
            "produce_ms": {"p50": produce, "p99": produce * 3},
            "delivery_ms": {"p50": delivery, "p99": delivery * 3},
            "delivery_fetch_wait_ms": 5,
        },
    }


def broker_run(
    kind: str, worker: float = 3000, worker_cpu: float = 400, bare: float = 6000, p50: float = 20,
    produce: float = 6.0, delivery: float = 3.0,
) -> dict[str, Any]:  # fmt: skip
    """Return one broker's results with projection and end-to-end figures (the shape bench/__main__ writes)."""
    return {
        "run": {"broker": kind, "duration_seconds": 300.0},
        "benchmarks": {
            "projection": {
                "events": 1000,
                "subject": _rate(worker, worker_cpu),
                "passthrough": _rate(50_000),
                "bare_faust": _rate(bare, 100),
                "phase_seconds": 60.0,
            },
            "e2e": {
                "latency_ms": {"p50": p50, "p90": p50 * 2, "p99": p50 * 3, "max": p50 * 4},
                "target_rps": 200,
                "seconds": 20,
                "requests": 4000,
                "achieved_rps": 200.0,
                "answered": 4000,
                "max_ms_by_second": [p50 * 4],
                "phase_seconds": 40.0,
            },
        },
        "errors": {},
        "brokers_measured": {
            "projection": {"projection-1": _probe(produce, delivery, 30)},
            "e2e": {"e2e": _probe(produce, delivery, 20)},
        },
    }


def run(embedded: dict[str, Any], kafka: dict[str, Any] | None) -> dict[str, Any]:
    brokers = {"embedded": embedded, **({"kafka": kafka} if kafka else {})}
    return {
        "run": {
            "started_at": "2026-12-01T13:00:00+00:00",
            "machine": {"cpus": 2, "python": "3.11.7"},
            "duration_seconds": 600.0,
            "sizes": {"projection_batches": 1000, "repeats": 1},
        },
        "brokers": brokers,
    }


def _goal_row(markdown: str, goal: str) -> list[str]:
    line = next(ln for ln in markdown.splitlines() if ln.startswith("| ") and f" {goal} |" in ln)
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_goals_table_has_a_value_and_a_verdict_per_broker() -> None:
    results = run(broker_run("embedded", worker=3000, bare=6000), broker_run("kafka", worker=5400, bare=6000))
    md = report.markdown(results, before=None)
    header = next(ln for ln in md.splitlines() if ln.startswith("| benchmark |"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "benchmark",
        "goal",
        "target",
        "embedded",
        "",
        "kafka",
        "",
    ]
    row = _goal_row(md, "projection events/s / bare Faust agent")
    assert row[2:] == [">= 0.8", "0.50", "**missed**", "0.90", "met"]
    assert _goal_row(md, "gateway POST req/s / bare FastAPI req/s")[3:] == ["not measured", "-", "not measured", "-"]


def test_console_summary_prints_every_goal_with_its_verdict_on_each_broker() -> None:
    results = run(broker_run("embedded", p50=30), broker_run("kafka", p50=12))
    text = report.console_summary(results)
    for _, label, *_ in report.GOALS:
        assert label in text
    line = next(ln for ln in text.splitlines() if ln.startswith("end to end p50 at 200 req/s"))
    assert line.split()[-6:] == ["30.0", "ms", "MISSED", "12.0", "ms", "met"]


def test_a_goal_differing_by_more_than_30_percent_is_explained_from_the_run_s_figures() -> None:
    # Kafka: the worker twice as fast at the same CPU per event -> the embedded side waited, it did not work more.
    results = run(broker_run("embedded", worker=3000), broker_run("kafka", worker=6000, produce=2.0, delivery=1.0))
    lines = dict(report.goal_differences(results))
    what = next(w for w in lines if w.startswith("projection events/s / bare Faust agent"))
    why = lines[what]
    assert "embedded 0.50, kafka 1.00 (+100 %)" in what
    assert "worker 3,000/s -> 6,000/s (+100 %)" in why
    assert "CPU per event 400 µs -> 400 µs (+0 %)" in why
    assert "on embedded the worker spent more of the time waiting" in why
    assert "acks=all produce p50 6.0 ms -> 2.0 ms" in why  # the phase's broker probe
    md = report.markdown(results, before=None)
    assert "## Differences between the brokers (more than 30 %)" in md and why in md


def test_a_difference_from_more_cpu_per_event_is_told_apart_from_waiting() -> None:
    results = run(broker_run("embedded", worker=3000, worker_cpu=300), broker_run("kafka", worker=1500, worker_cpu=600))
    why = dict(report.goal_differences(results))
    line = next(v for k, v in why.items() if k.startswith("projection events/s / bare Faust agent"))
    assert "CPU per event 300 µs -> 600 µs (+100 %)" in line and "the CPU per event moved with it" in line


def test_latency_difference_is_split_into_the_probe_s_produce_and_delivery_times() -> None:
    results = run(
        broker_run("embedded", p50=40, produce=6, delivery=4), broker_run("kafka", p50=20, produce=2, delivery=1)
    )
    why = dict(report.goal_differences(results))
    line = next(v for k, v in why.items() if k.startswith("end to end p50"))
    # 2 produces + 2 deliveries: 2 x (6 + 4) = 20 ms on embedded, 2 x (2 + 1) = 6 ms on kafka
    assert "produce 6.0 ms -> 2.0 ms" in line and "delivery 4.0 ms -> 1.0 ms" in line
    assert "broker's share is 20.0 ms -> 6.0 ms" in line


def test_figures_within_30_percent_get_no_line() -> None:
    results = run(broker_run("embedded", worker=3000, p50=20), broker_run("kafka", worker=3600, p50=25))
    assert report.goal_differences(results) == []
    assert compare.differing_figures(results["brokers"]["embedded"], results["brokers"]["kafka"]) == []
    assert "- none" in report.markdown(results, before=None)


@pytest.mark.parametrize(
    ("a", "b", "differs"),
    [(100, 130, False), (100, 131, True), (131, 100, True), (0.5, 0.66, True), (None, 5, False), (0, 0, False),
     (0, 1, True)],
)  # fmt: skip
def test_differs_is_relative_to_the_smaller_value(a: float | None, b: float | None, differs: bool) -> None:
    assert compare.differs(a, b) is differs


def test_a_run_on_one_broker_has_one_column_and_no_comparison() -> None:
    results = run(broker_run("embedded"), None)
    md = report.markdown(results, before=None)
    assert "| kafka |" not in md and "Differences between the brokers" not in md


def test_a_run_from_before_the_broker_columns_still_reads_as_embedded() -> None:
    old = broker_run("embedded", worker=1000)
    old["run"]["started_at"] = "2026-11-29T13:00:00+00:00"
    new = run(broker_run("embedded", worker=3000), broker_run("kafka"))
    md = report.markdown(new, before=old)
    assert "## Before / after" in md
    assert "| projection worker rate | 1,000/s | 3,000/s |" in md
    assert report.per_broker(old) == {"embedded": old}


README_TEXT = f"""# Benchmarks

Intro kept as it is.

{report.README_START}
old table
{report.README_END}

Text after the block, kept.
"""


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    reference = tmp_path / "reference"
    reference.mkdir()
    old = broker_run("embedded", worker=1000)
    old["run"]["started_at"] = "2026-11-29T13:00:00+00:00"
    (reference / "before.json").write_text(json.dumps(old))
    (reference / "latest.json").write_text("{}")
    (reference / "latency.png").write_bytes(b"old png")
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    return {"out": tmp_path / "out", "reference": reference, "readme": readme}


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_run_without_the_reference_flag_writes_only_its_out_dir(dirs: dict[str, Path]) -> None:
    results = run({**broker_run("embedded"), "benchmarks": {"projection": broker_run("x")["benchmarks"]["projection"]}},
                  None)  # fmt: skip
    reference_before, readme_before = _snapshot(dirs["reference"]), dirs["readme"].read_bytes()
    paths = report.publish(results, dirs["out"], "latest", reference=False,
                           reference_dir=dirs["reference"], readme=dirs["readme"])  # fmt: skip
    assert {p.parent for p in paths} == {dirs["out"]}
    assert sorted(p.name for p in dirs["out"].iterdir()) == ["latest.json", "latest.md"]
    assert _snapshot(dirs["reference"]) == reference_before
    assert dirs["readme"].read_bytes() == readme_before


def test_the_reference_flag_replaces_the_reference_run_and_only_the_readme_block(dirs: dict[str, Path]) -> None:
    projection = broker_run("x")["benchmarks"]["projection"]
    kafka = {**broker_run("kafka"), "benchmarks": {"projection": copy.deepcopy(projection)}}
    results = run({**broker_run("embedded"), "benchmarks": {"projection": projection}}, kafka)
    before_json = (dirs["reference"] / "before.json").read_bytes()
    report.publish(results, dirs["out"], "latest", reference=True,
                   reference_dir=dirs["reference"], readme=dirs["readme"])  # fmt: skip
    assert sorted(p.name for p in dirs["reference"].iterdir()) == ["before.json", "latest.json", "latest.md"]
    assert (dirs["reference"] / "before.json").read_bytes() == before_json
    written = json.loads((dirs["reference"] / "latest.json").read_text())
    assert set(written["brokers"]) == {"embedded", "kafka"} and "goals" in written["brokers"]["kafka"]
    text = dirs["readme"].read_text()
    assert text.startswith("# Benchmarks\n\nIntro kept as it is.\n\n" + report.README_START)
    assert text.endswith(report.README_END + "\n\nText after the block, kept.\n")
    assert "old table" not in text
    assert _goal_row(text, "projection events/s / bare Faust agent")[3:] == [
        "0.17",
        "0.50",
        "**missed**",
        "0.50",
        "**missed**",
    ]


def test_a_readme_without_the_markers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latest.json").write_text(json.dumps(run(broker_run("embedded"), None)))
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    with pytest.raises(ValueError, match="no generated block"):
        report.update_readme(tmp_path / "latest.json", readme)
    assert readme.read_text() == "# no block here\n"


def test_the_committed_readme_table_is_generated_from_the_committed_reference() -> None:
    results = json.loads((report.REFERENCE / "latest.json").read_text())
    before_path = report.REFERENCE / "before.json"
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    assert report.readme_block(results, before) in report.README.read_text()
