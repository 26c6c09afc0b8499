"""/docs and /redoc from packaged assets (no CDN); the reference page at /app/ when a built page is configured."""

import re
from pathlib import Path

import pytest

from gateway.docs_assets import ASSET_NAMES, ASSETS_URL
from gateway.main import create_app
from tests.unit.gateway.kit import FakePublisher, FakeState, running, settings


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_local_assets(page: str) -> None:
    async with running() as gw:
        html = (await gw.client.get(page)).text
        urls = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", html)
        assert urls and all(u.startswith(ASSETS_URL) for u in urls), urls
        for url in urls:
            answer = await gw.client.get(url)
            assert answer.status_code == 200 and len(answer.content) > 1000, url
        assert "/openapi.json" in html


async def test_every_packaged_asset_is_served() -> None:
    async with running() as gw:
        for name in ASSET_NAMES:
            assert (await gw.client.get(f"{ASSETS_URL}/{name}")).status_code == 200, name


async def test_no_page_without_a_web_dir() -> None:
    async with running() as gw:
        assert (await gw.client.get("/app/")).status_code == 404
        assert (await gw.client.get("/")).status_code == 404


async def test_the_built_page_is_served_at_app(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>page</title>")
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    async with running(settings(web_dir=tmp_path)) as gw:
        home = await gw.client.get("/")
        assert home.status_code == 307 and home.headers["location"] == "/app/"
        page = await gw.client.get("/app/")
        assert page.status_code == 200 and "<title>page</title>" in page.text
        assert (await gw.client.get("/app/assets/app.js")).text == "console.log(1)"
        schema = (await gw.client.get("/openapi.json")).json()
        assert not any(path.startswith("/app") or path == "/" for path in schema["paths"])


def test_a_web_dir_without_a_built_page_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="npm run build"):
        create_app(settings(web_dir=tmp_path), publisher=FakePublisher(), state_client=FakeState())
