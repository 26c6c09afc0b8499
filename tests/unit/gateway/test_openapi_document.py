"""The OpenAPI document says what the gateway enforces: security per auth mode, the pipeline enum, links, codes."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.pipelines import load_catalog
from gateway.main import create_app
from gateway.settings import GatewaySettings
from tests.support.tokens import AUDIENCE, ISSUER, SECRET

REPO = Path(__file__).resolve().parents[3]
V1 = {"request_pipeline", "get_request_outcome", "list_pipelines", "get_batch_status", "create_stream_ticket"}


def document(auth_mode: str = "none", pipelines: Path = REPO / "pipelines.yaml") -> dict[str, Any]:
    extra = {"jwt_secret": SECRET, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE} if auth_mode == "jwt" else {}
    return create_app(GatewaySettings(pipelines_file=pipelines, auth_mode=auth_mode, **extra)).openapi()


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for ops in doc["paths"].values() for op in ops.values()}


def test_auth_mode_none_declares_every_operation_public() -> None:
    doc = document("none")
    assert "securitySchemes" not in doc["components"]
    assert all(op["security"] == [] for op in operations(doc).values())


def test_auth_mode_jwt_declares_security_per_operation_as_enforced() -> None:
    ops = operations(document("jwt"))
    assert {name for name, op in ops.items() if op["security"] == [{"bearerAuth": []}]} == V1
    assert ops["stream_batch_events"]["security"] == [{"bearerAuth": []}, {"streamTicket": []}]
    assert all(ops[name]["security"] == [] for name in ("healthz", "readyz", "metrics"))
    # The ticket is declared once, as a credential: not also as a query parameter.
    assert "ticket" not in {p["name"] for p in ops["stream_batch_events"]["parameters"]}


def test_requested_pipeline_is_the_catalog_enum_read_at_start(tmp_path: Path) -> None:
    doc = document()
    catalog = load_catalog(REPO / "pipelines.yaml")
    field = doc["components"]["schemas"]["PipelineRequestBody"]["properties"]["requested_pipeline"]
    assert field["enum"] == [*catalog.names, *catalog.step_names]

    custom = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    custom["pipelines"]["just_spellcheck"] = {**custom["pipelines"]["spellcheck"], "description": "x"}
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump(custom))
    enum = document(pipelines=tmp_path / "pipelines.yaml")["components"]["schemas"]["PipelineRequestBody"]
    assert "just_spellcheck" in enum["properties"]["requested_pipeline"]["enum"]


def test_links_run_from_the_post_to_the_outcome_and_the_status() -> None:
    ops = operations(document())
    links = ops["request_pipeline"]["responses"]["202"]["links"]
    assert links["GetRequestOutcome"] == {
        "operationId": "get_request_outcome",
        "parameters": {"batch_id": "$request.path.batch_id", "correlation_id": "$response.body#/correlation_id"},
        "description": links["GetRequestOutcome"]["description"],
    }
    assert links["GetBatchStatus"]["operationId"] == "get_batch_status"
    assert links["StreamBatchEvents"]["operationId"] == "stream_batch_events"
    assert ops["get_batch_status"]["responses"]["200"]["links"]["RequestPipeline"]["parameters"] == {
        "batch_id": "$response.body#/batch_id"
    }


@pytest.mark.parametrize("auth_mode", ["none", "jwt"])
def test_every_operation_documents_its_error_codes(auth_mode: str) -> None:
    ops = operations(document(auth_mode))
    assert all("500" in op["responses"] for op in ops.values())
    assert {"401", "403", "404", "422", "429", "502", "503"} <= set(ops["stream_batch_events"]["responses"])
    assert {"400", "413", "415", "422"} <= set(ops["request_pipeline"]["responses"])


def test_the_event_stream_schema_describes_each_event() -> None:
    doc = document()
    content = operations(doc)["stream_batch_events"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    kinds = {
        e["properties"]["event"]["const"]: e["properties"]["data"]["contentSchema"]["$ref"]
        for e in content["text/event-stream"]["schema"]["oneOf"]
    }
    assert kinds == {
        "snapshot": "#/components/schemas/BatchStatusView",
        "request": "#/components/schemas/PipelineRequestOutcome",
        "progress": "#/components/schemas/BatchProgressEvent",
    }
    assert "BatchProgressEvent" in doc["components"]["schemas"]


def test_no_parameter_is_declared_nullable() -> None:
    for op in operations(document()).values():
        for parameter in op.get("parameters", []):
            assert {"type": "null"} not in parameter["schema"].get("anyOf", []), parameter
