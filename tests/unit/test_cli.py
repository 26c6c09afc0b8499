"""`conductor pipelines check|resolve`: output, exit codes, and errors without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conductor.cli import EXIT_INVALID, main
from tests.unit.factories import PIPELINES_FILE, REPO

CONFIG = ["--config", str(PIPELINES_FILE)]
CONDUCTOR = Path(sys.executable).parent / "conductor"


def test_check_prints_each_pipeline_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipelines", "check", *CONFIG]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{PIPELINES_FILE}: 5 pipeline(s) valid",
        "  spellcheck: spellcheck",
        "  nlp: spellcheck -> nlp",
        "  cj_assessment: spellcheck -> cj_assessment",
        "  ai_feedback: spellcheck -> nlp -> ai_feedback",
        "  comprehensive: spellcheck -> nlp -> cj_assessment -> ai_feedback",
    ]
    assert err == ""


def test_check_defaults_to_pipelines_yaml_in_the_working_directory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["pipelines", "check"]) == 0
    assert capsys.readouterr().out.startswith("pipelines.yaml: 5 pipeline(s) valid\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "pipelines:\n  x:\n    steps:\n"
            "      - {name: nlp, service_name: s, event_type: e, event_data_model: m, depends_on: [ghost]}\n",
            "error: Step 'nlp' in pipeline 'x' depends on unknown step 'ghost'",
            id="unknown-dependency",
        ),
        pytest.param(
            "pipelines:\n  x:\n    steps:\n"
            "      - {name: a, service_name: s, event_type: e, event_data_model: m, depends_on: [b]}\n"
            "      - {name: b, service_name: s, event_type: e, event_data_model: m, depends_on: [a]}\n",
            "error: Dependency cycle detected in pipeline 'x': a -> b -> a",
            id="cycle",
        ),
        pytest.param("", "error: Top level must be a mapping with a 'pipelines' mapping", id="empty"),
        pytest.param(b"\xff\xfe", "error: Cannot read pipelines file {path}: not UTF-8 text", id="not-utf8"),
        pytest.param("pipelines: [", "error: Cannot parse pipelines file {path}: ", id="bad-yaml"),
        pytest.param(None, "error: Cannot read pipelines file {path}: No such file or directory", id="missing"),
    ],
)
@pytest.mark.parametrize("command", [["check"], ["resolve", "nlp"]])
def test_bad_file_exits_2_with_the_message_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes | None,
    message: str,
    command: list[str],
) -> None:
    path = tmp_path / "pipelines.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["pipelines", *command, "--config", str(path)])
    assert info.value.code == EXIT_INVALID == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message.format(path=path))
    assert "Traceback" not in err


def test_bad_file_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "pipelines.yaml"
    path.write_bytes(b"\xff\xfe not yaml either")
    proc = subprocess.run(
        [str(CONDUCTOR), "pipelines", "check", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"error: Cannot read pipelines file {path}: not UTF-8 text (invalid start byte)\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["ai_feedback", "--completed", "spellcheck"],
            {"final_pipeline": ["nlp", "ai_feedback"], "pruned_steps": ["spellcheck"]},
        ),
        (["ai_feedback"], {"final_pipeline": ["spellcheck", "nlp", "ai_feedback"], "pruned_steps": []}),
        (
            ["comprehensive", "--completed", "nlp", "spellcheck"],
            {"final_pipeline": ["cj_assessment", "ai_feedback"], "pruned_steps": ["spellcheck", "nlp"]},
        ),
        (
            ["nlp", "--completed", "spellcheck", "nlp"],
            {"final_pipeline": [], "pruned_steps": ["spellcheck", "nlp"]},
        ),
    ],
)
def test_resolve_json(capsys: pytest.CaptureFixture[str], args: list[str], expected: dict[str, list[str]]) -> None:
    assert main(["pipelines", "resolve", *args, "--json", *CONFIG]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == expected
    assert out.count("\n") == 1
    assert err == ""


def test_resolve_json_matches_the_documented_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["pipelines", "resolve", "ai_feedback", "--completed", "spellcheck", "--json", *CONFIG])
    assert capsys.readouterr().out == '{"final_pipeline": ["nlp", "ai_feedback"], "pruned_steps": ["spellcheck"]}\n'


@pytest.mark.parametrize(
    ("args", "summary"),
    [
        (
            ["ai_feedback", "--completed", "spellcheck"],
            "Pipeline 'ai_feedback' for batch '<batch>': 2 step(s) to run (nlp -> ai_feedback); "
            "1 already complete and pruned (spellcheck).",
        ),
        (
            ["spellcheck", "--completed", "spellcheck"],
            "All steps of 'spellcheck' are already complete for batch '<batch>' (spellcheck): nothing to run.",
        ),
    ],
)
def test_resolve_prints_a_summary(capsys: pytest.CaptureFixture[str], args: list[str], summary: str) -> None:
    assert main(["pipelines", "resolve", *args, *CONFIG]) == 0
    assert capsys.readouterr().out == summary + "\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ghost"],
            "error: Unknown pipeline 'ghost'; valid pipelines: spellcheck, nlp, cj_assessment, ai_feedback, "
            "comprehensive\n",
        ),
        (["nlp", "--completed", "spelcheck", "nlp", "zz"], "error: unknown step(s) in --completed: spelcheck, zz\n"),
    ],
)
def test_resolve_refuses_unknown_names(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["pipelines", "resolve", *args, "--json", *CONFIG]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert out == ""
    assert err == message


@pytest.mark.parametrize("argv", [[], ["pipelines"], ["pipelines", "frobnicate"], ["pipelines", "resolve"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: conductor" in capsys.readouterr().err


def test_console_script_help() -> None:
    proc = subprocess.run([str(CONDUCTOR), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: conductor")
    assert "pipelines" in proc.stdout and "broker" in proc.stdout
    assert proc.stderr == ""


def test_console_script_check_in_the_repo() -> None:
    proc = subprocess.run([str(CONDUCTOR), "pipelines", "check"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert proc.returncode == 0
    assert "  ai_feedback: spellcheck -> nlp -> ai_feedback" in proc.stdout.splitlines()
