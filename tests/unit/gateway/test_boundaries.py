"""The gateway depends on `contracts` (and the topic-creation helper), never on the worker's code or Faust."""

import json
import subprocess
import sys

from tests.unit.gateway.kit import REPO

PROBE = "import json, sys, gateway.main; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def test_gateway_imports_no_worker_code() -> None:
    loaded = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, check=True, timeout=60
            ).stdout
        )
    )
    assert {"gateway", "contracts", "fastapi"} <= loaded
    assert loaded.isdisjoint({"streams", "tables", "faust", "mode", "rocksdict"}), sorted(loaded)
