"""OpenAPI extras: every error response documented with problem+json examples, the Problem schema, security, links."""

from typing import Any
from uuid import UUID

from fastapi import FastAPI

from contracts.pipelines import PipelineCatalog
from gateway.errors import PROBLEM_JSON, problem_body
from gateway.models import BatchProgressEvent, FieldError, Problem

_EXAMPLE_ID = UUID("1b8315aa-c3c0-48da-a286-5f5ec97b5cc5")
_VALID = ["spellcheck", "nlp", "cj_assessment", "ai_feedback", "comprehensive"]
_DOCS: dict[int, tuple[str, list[tuple[str, str, dict[str, Any]]]]] = {
    400: (
        "The body's batch id differs from the path's, or the body is not JSON",
        [
            ("BATCH_ID_MISMATCH", "The body's batch_id differs from the batch id in the path.", {}),
            ("MALFORMED_JSON", "The request body is not valid JSON.", {}),
        ],
    ),
    401: (
        "No bearer token, or an invalid one (see WWW-Authenticate)",
        [
            ("AUTHENTICATION_REQUIRED", "Send a bearer token: Authorization: Bearer <JWT>.", {}),
            ("INVALID_TOKEN", "The bearer token has expired.", {}),
        ],
    ),
    403: ("The batch is registered to another user", [("FORBIDDEN", "This batch is registered to another user.", {})]),
    404: ("No registered batch with this id", [("BATCH_NOT_FOUND", "No registered batch with this id.", {})]),
    413: ("The body exceeds the size cap", [("PAYLOAD_TOO_LARGE", "The request body exceeds 65536 bytes.", {})]),
    415: (
        "The body is not sent as JSON",
        [("UNSUPPORTED_MEDIA_TYPE", "Send the body as JSON with Content-Type: application/json.", {})],
    ),
    422: (
        "A field is invalid, or the pipeline is unknown (the valid names are listed)",
        [
            (
                "UNKNOWN_PIPELINE",
                f"Unknown pipeline 'spelcheck'. Valid pipelines: {', '.join(_VALID)}.",
                {
                    "errors": [
                        {
                            "field": "requested_pipeline",
                            "location": "body",
                            "message": f"Must be one of: {', '.join(_VALID)} (or a step: ...).",
                            "type": "unknown_pipeline",
                        }
                    ],
                    "valid_pipelines": _VALID,
                },
            ),
            (
                "VALIDATION_ERROR",
                "The request is invalid; see `errors`.",
                {
                    "errors": [
                        {
                            "field": "requested_pipeline",
                            "location": "body",
                            "message": "Field required",
                            "type": "missing",
                        },
                    ]
                },
            ),
        ],
    ),
    429: (
        "Too many requests from this client for this endpoint (see Retry-After and RateLimit-*)",
        [("RATE_LIMITED", "Rate limit of 10 per 1 s exceeded; retry in 1 s.", {"retry_after": 1})],
    ),
    500: (
        "An unexpected error (a bug): the answer still carries the correlation id",
        [("INTERNAL_ERROR", "An unexpected error occurred.", {})],
    ),
    502: (
        "The batch state service answered something unusable",
        [("WORKER_ERROR", "The batch state service answered HTTP 500.", {})],
    ),
    503: (
        "The broker or the batch state service is unreachable; retry after Retry-After seconds",
        [
            ("BROKER_UNAVAILABLE", "The broker did not acknowledge the command in time; retry shortly.", {}),
            ("WORKER_UNAVAILABLE", "The batch state service is unavailable; retry shortly.", {}),
        ],
    ),
}
_HEADERS = {
    401: {"WWW-Authenticate": "Bearer challenge (RFC 6750)"},
    429: {
        "Retry-After": "Seconds to wait",
        "RateLimit-Limit": "Requests allowed in the binding window",
        "RateLimit-Remaining": "Requests left in it",
        "RateLimit-Reset": "Seconds until it resets",
        "RateLimit-Policy": "Every window of this endpoint, e.g. `10;w=1, 120;w=60`",
    },
    503: {"Retry-After": "Seconds to wait"},
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return FastAPI `responses=` documentation (schema, examples, headers) for these error statuses."""
    docs: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, cases = _DOCS[status]
        examples = {}
        for code, detail, extra in cases:
            extra = dict(extra)
            errors = extra.pop("errors", [])
            examples[code] = {"summary": code, "value": problem_body(status, code, detail, _EXAMPLE_ID, errors, extra)}
        docs[status] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "examples": examples}},
        }
        if status in _HEADERS:
            docs[status]["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in _HEADERS[status].items()
            }
    return docs


def _event(name: str, model: str, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["event", "id", "data"],
        "properties": {
            "event": {"const": name},
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The batch version (Last-Event-ID)."},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{model}"},
            },
        },
    }


# One event of the stream (Open API 3.1: the schema of a text/event-stream describes each event).
_EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event("snapshot", "BatchStatusView", "The batch's status, as GET /v1/batches/{batch_id}/status answers it."),
        _event("request", "PipelineRequestOutcome", "One request's outcome, as GET .../pipelines/{id} answers it."),
        _event("progress", "BatchProgressEvent", "The batch's step progress changed."),
    ]
}


def _not_nullable(parameter: dict[str, Any]) -> None:
    """An optional query or header parameter is absent or a value, never JSON null: drop FastAPI's null branch."""
    schema = parameter.get("schema", {})
    branches = schema.get("anyOf")
    if isinstance(branches, list) and {"type": "null"} in branches:
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            del schema["anyOf"]
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


PUBLIC_OPERATIONS = frozenset({"healthz", "readyz", "metrics"})
TICKET_PARAMETER = "ticket"


def document(app: FastAPI, catalog: PipelineCatalog, auth_mode: str) -> None:
    """Finish the OpenAPI document so that it says exactly what the gateway enforces.

    The Problem schema; `requested_pipeline` as the enum of the catalog's pipeline and step names; security per
    operation (auth mode `jwt`: bearer on /v1, bearer or a stream ticket on the event stream, the probes public;
    auth mode `none`: every operation public); links from the POST's answer to the request's outcome, the batch's
    status and its event stream, and from the status to the POST.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["FieldError"] = FieldError.model_json_schema()
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components["Problem"].pop("$defs", None)
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        requested = components["PipelineRequestBody"]["properties"]["requested_pipeline"]
        requested["enum"] = [*catalog.names, *catalog.step_names]
        for bound in ("minLength", "maxLength"):
            requested.pop(bound, None)
        components["BatchProgressEvent"] = BatchProgressEvent.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["BatchProgressEvent"].pop("$defs", None)
        operations = _operations(schema)
        events = operations["stream_batch_events"]["responses"]["200"]["content"]
        events["text/event-stream"] = {"schema": _EVENT_SCHEMA}
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _not_nullable(parameter)
        _secure(schema, auth_mode)
        _link(schema)
        for operation in _operations(schema).values():  # the last-resort handler answers any operation
            operation["responses"].update({str(k): v for k, v in problem_responses(500).items()})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for ops in schema.get("paths", {}).values() for op in ops.values()}


def _secure(schema: dict[str, Any], auth_mode: str) -> None:
    operations = _operations(schema)
    events = operations["stream_batch_events"]
    # The ticket travels as a query parameter, but it is a credential: declared as a security scheme, not data.
    events["parameters"] = [p for p in events.get("parameters", []) if p["name"] != TICKET_PARAMETER]
    if auth_mode != "jwt":
        for operation in operations.values():
            operation["security"] = []
        return
    schema["components"]["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT from the platform's identity provider.",
        },
        "streamTicket": {
            "type": "apiKey",
            "in": "query",
            "name": TICKET_PARAMETER,
            "description": "A stream ticket from `POST /v1/batches/{batch_id}/events/ticket` (for EventSource).",
        },
    }
    for name, operation in operations.items():
        if name in PUBLIC_OPERATIONS:
            operation["security"] = []
        elif name == "stream_batch_events":
            operation["security"] = [{"bearerAuth": []}, {"streamTicket": []}]
        else:
            operation["security"] = [{"bearerAuth": []}]


def _link(schema: dict[str, Any]) -> None:
    operations = _operations(schema)
    same_batch = {"batch_id": "$request.path.batch_id"}
    operations["request_pipeline"]["responses"]["202"]["links"] = {
        "GetRequestOutcome": {
            "operationId": "get_request_outcome",
            "parameters": {**same_batch, "correlation_id": "$response.body#/correlation_id"},
            "description": "The request's outcome (the answer's `status_url`).",
        },
        "GetBatchStatus": {
            "operationId": "get_batch_status",
            "parameters": same_batch,
            "description": "The batch's status (the answer's `batch_status_url`).",
        },
        "StreamBatchEvents": {
            "operationId": "stream_batch_events",
            "parameters": same_batch,
            "description": "The batch's event stream, where the outcome arrives as a `request` event.",
        },
    }
    from_status = {"batch_id": "$response.body#/batch_id"}
    operations["get_batch_status"]["responses"]["200"]["links"] = {
        "RequestPipeline": {"operationId": "request_pipeline", "parameters": from_status},
        "CreateStreamTicket": {"operationId": "create_stream_ticket", "parameters": from_status},
        "StreamBatchEvents": {"operationId": "stream_batch_events", "parameters": from_status},
    }
