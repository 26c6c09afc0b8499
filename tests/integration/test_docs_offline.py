"""`/docs` and `/redoc` render their operations in headless Chromium with no host but the gateway reachable."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor.brokers import Broker
from tests.support.browser import rendered_dom
from tests.support.gateway_process import GatewayProcess, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.http_surface]


@pytest.fixture(scope="module")
def gateway(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with start_gateway(broker, Path(tmp_path_factory.mktemp("docs"))) as running:
        yield running


@pytest.fixture(scope="module")
def document(gateway: GatewayProcess) -> dict[str, Any]:
    with gateway.client() as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_the_gateway(gateway: GatewayProcess, page: str) -> None:
    with gateway.client() as client:
        html = client.get(page).text
    external = re.findall(r"""(?:src|href)=["']?(https?://[^"' >]+)""", html)
    assert external == [], f"{page} loads assets from elsewhere: {external}"
    for asset in re.findall(r"""(?:src|href)=["']?(/docs-assets/[^"' >]+)""", html):
        with gateway.client() as client:
            assert client.get(asset).status_code == 200, asset


def test_swagger_ui_renders_every_operation_offline(gateway: GatewayProcess, document: dict[str, Any]) -> None:
    dom = rendered_dom(f"{gateway.url}/docs")
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == set(document["paths"]), f"Swagger UI rendered {sorted(rendered)}"


def test_redoc_renders_every_operation_offline(gateway: GatewayProcess, document: dict[str, Any]) -> None:
    dom = rendered_dom(f"{gateway.url}/redoc")
    summaries = [op["summary"] for ops in document["paths"].values() for op in ops.values() if "summary" in op]
    assert summaries, "the document names no operation"
    missing = [s for s in summaries if f">{s}<" not in dom.replace("&#x27;", "'").replace("&#39;", "'")]
    assert missing == [], f"ReDoc did not render: {missing}"
