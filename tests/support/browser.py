"""Debian's headless Chromium for tests: render a page (JavaScript run) with every host but loopback unreachable."""

import shutil
import subprocess
import tempfile

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Offline on purpose: any name but the loopback address fails to resolve, so a CDN reference cannot load.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium_path() -> str:
    """Return Debian's chromium binary; fail (never skip) when it is missing."""
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError("chromium is not installed: apt-get install -y chromium")
    return path


def rendered_dom(url: str, budget_ms: int = 20_000, timeout: float = 90.0) -> str:
    """Return the DOM of `url` after its scripts ran (virtual time budget) in headless Chromium."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [
                chromium_path(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise AssertionError(f"chromium exited {result.returncode}: {result.stderr.decode(errors='replace')[-2000:]}")
    return result.stdout.decode("utf-8", errors="replace")
