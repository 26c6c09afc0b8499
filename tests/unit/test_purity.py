"""The pure modules import only contracts and the standard library (plus pydantic and yaml)."""

import json
import subprocess
import sys

import pytest

from tests.unit.factories import REPO

PURE_MODULES = [
    "contracts",
    "contracts.commands",
    "contracts.envelope",
    "contracts.events",
    "contracts.pipelines",
    "contracts.state",
    "contracts.topics",
    "streams.resolution",
    "streams.decoding",
    "streams.dlq",
    "tables.projection",
]
FRAMEWORKS = ["faust", "fastapi", "aiokafka", "httpx", "starlette", "uvicorn", "mode", "conductor", "gateway"]

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _top_level_modules_after_importing(*modules: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, timeout=60, cwd=REPO, check=True
    )
    return set(json.loads(proc.stdout))


def test_pure_modules_together_pull_no_framework() -> None:
    loaded = _top_level_modules_after_importing(*PURE_MODULES)
    assert {"contracts", "streams", "tables", "pydantic"} <= loaded  # the probe did import them
    assert loaded.isdisjoint(FRAMEWORKS), sorted(loaded & set(FRAMEWORKS))


@pytest.mark.parametrize("module", ["streams.resolution", "streams.decoding", "streams.dlq", "tables.projection"])
def test_each_pure_module_alone_pulls_no_framework(module: str) -> None:
    loaded = _top_level_modules_after_importing(module)
    assert loaded.isdisjoint(FRAMEWORKS), sorted(loaded & set(FRAMEWORKS))


def test_the_probe_would_notice_a_framework() -> None:
    assert "httpx" in _top_level_modules_after_importing("httpx")
