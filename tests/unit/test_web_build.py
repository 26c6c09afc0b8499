"""`conductor dev`'s page build: rebuilt only when missing or older than its sources; a clear error without npm."""

import os
from pathlib import Path

import pytest

from conductor import web_build


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "App.tsx").write_text("x")
    monkeypatch.setattr(web_build, "SOURCES", [tmp_path / "src"])
    monkeypatch.setattr(web_build, "WEB", tmp_path)
    return tmp_path


def _built(web: Path, at: float) -> None:
    (web / "dist").mkdir(exist_ok=True)
    index = web / "dist" / "index.html"
    index.write_text("<!doctype html>")
    os.utime(index, (at, at))


def test_missing_page_is_not_current(web: Path) -> None:
    assert not web_build.page_is_current(web)


def test_page_newer_than_its_sources_is_current(web: Path) -> None:
    os.utime(web / "src" / "App.tsx", (1000, 1000))
    _built(web, 2000)
    assert web_build.page_is_current(web)


def test_a_changed_source_makes_the_page_stale(web: Path) -> None:
    _built(web, 2000)
    os.utime(web / "src" / "App.tsx", (3000, 3000))
    assert not web_build.page_is_current(web)


def test_current_page_is_used_without_npm(web: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.utime(web / "src" / "App.tsx", (1000, 1000))
    _built(web, 2000)
    monkeypatch.setattr(web_build.shutil, "which", lambda name: None)
    assert web_build.build_page(web / "log", print) == web / "dist"


def test_stale_page_without_npm_says_what_is_missing(web: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_build.shutil, "which", lambda name: None)
    with pytest.raises(web_build.WebBuildError, match="npm is not installed"):
        web_build.build_page(web / "log", print)
