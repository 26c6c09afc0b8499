"""The reference page for `conductor dev`: built with npm when its build is missing or older than its sources."""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
WEB = CLIENTS / "web"
TYPESCRIPT = CLIENTS / "typescript"
SOURCES = [WEB / "src", WEB / "index.html", WEB / "vite.config.ts", WEB / "package-lock.json", TYPESCRIPT / "src"]


class WebBuildError(RuntimeError):
    """The page could not be built (npm missing, or npm failed)."""


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


def _needs_install(package: Path) -> bool:
    marker = package / "node_modules" / ".package-lock.json"
    return not marker.is_file() or marker.stat().st_mtime < (package / "package-lock.json").stat().st_mtime


def web_dist(web: Path | None = None) -> Path:
    """Return the directory the page is built into."""
    return (web or WEB) / "dist"


def page_is_current(web: Path | None = None) -> bool:
    """Return whether the built page exists and is newer than every source it is built from."""
    index = web_dist(web) / "index.html"
    return index.is_file() and index.stat().st_mtime >= _newest(SOURCES)


def build_page(log_path: Path, say: Callable[[str], None]) -> Path:
    """Build the page if needed (npm ci in both packages when their lockfile changed, then npm run build)."""
    if page_is_current():
        return web_dist()
    npm = shutil.which("npm")
    if npm is None:
        raise WebBuildError("npm is not installed (Node.js 20+ with npm is needed to build clients/web)")
    say(f"building the reference page (npm ci && npm run build in clients/; once, ~30 s; log in {log_path})...")
    install = [npm, "ci", "--no-audit", "--no-fund"]
    steps = [(package, install) for package in (TYPESCRIPT, WEB) if _needs_install(package)]
    steps.append((WEB, [npm, "run", "build"]))
    with log_path.open("ab") as log:
        for cwd, command in steps:
            log.write(f"$ (cd {cwd}) {' '.join(command)}\n".encode())
            log.flush()
            result = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=600)
            if result.returncode != 0:
                raise WebBuildError(f"`{' '.join(command[1:])}` failed in {cwd}; see {log_path}")
    return web_dist()
