"""OpenAPI extras: every error response documented with problem+json examples, the Problem schema, bearer auth."""

from typing import Any
from uuid import UUID

from fastapi import FastAPI

from gateway.errors import PROBLEM_JSON, problem_body
from gateway.models import FieldError, Problem

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


def document(app: FastAPI) -> None:
    """Finish the OpenAPI document: the Problem schema, the bearer scheme on /v1, no default `{detail}` 422 schema."""
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
        schema["components"]["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT from the platform's identity provider (auth mode `jwt`); unused in mode `none`.",
            }
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
