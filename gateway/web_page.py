"""The reference page (clients/web, built by Vite) served at `/app/` from the same origin as the API: no CORS needed."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

PAGE_URL = "/app"


def install_web_page(app: FastAPI, directory: Path) -> None:
    """Serve the built page in `directory` at /app/ and send `/` there; refuse a directory without index.html."""
    if not (directory / "index.html").is_file():
        raise RuntimeError(f"{directory} holds no built page (index.html); build it: cd clients/web && npm run build")
    app.mount(PAGE_URL, StaticFiles(directory=directory, html=True), name="web-page")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PAGE_URL}/", status_code=307)
