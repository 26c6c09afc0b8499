"""The gateway's error tree and its translation to RFC 9457 `application/problem+json` responses."""

import html
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.context import request_context

log = logging.getLogger("gateway.errors")

PROBLEM_JSON = "application/problem+json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe_text(value: object, limit: int = 64) -> str:
    """Return client-supplied text fit to quote in an error: truncated, HTML-escaped, control characters shown."""
    text = str(value)
    cut = text[:limit]
    cut = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", cut)
    return html.escape(cut, quote=False) + ("…" if len(text) > limit else "")


# Short human titles per code (RFC 9457: the same for every occurrence of a problem type).
TITLES = {
    "BATCH_ID_MISMATCH": "Batch id mismatch",
    "MALFORMED_JSON": "Malformed JSON",
    "AUTHENTICATION_REQUIRED": "Authentication required",
    "INVALID_TOKEN": "Invalid token",
    "FORBIDDEN": "Not your batch",
    "BATCH_NOT_FOUND": "Batch not found",
    "NOT_FOUND": "Not found",
    "METHOD_NOT_ALLOWED": "Method not allowed",
    "PAYLOAD_TOO_LARGE": "Request body too large",
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported media type",
    "VALIDATION_ERROR": "Invalid request",
    "UNKNOWN_PIPELINE": "Unknown pipeline",
    "RATE_LIMITED": "Too many requests",
    "WORKER_ERROR": "Batch state service error",
    "BROKER_UNAVAILABLE": "Broker unavailable",
    "WORKER_UNAVAILABLE": "Batch state service unavailable",
    "NOT_READY": "Not ready",
    "CORS_REFUSED": "CORS request refused",
    "INTERNAL_ERROR": "Internal error",
}


def problem_type(code: str) -> str:
    """Return the problem `type` URI for an error code."""
    return f"urn:batch-conductor:problem:{code.lower().replace('_', '-')}"


def problem_body(
    status: int,
    code: str,
    detail: str,
    correlation_id: UUID,
    errors: Sequence[Mapping[str, str]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a problem document (a dict ready for JSON)."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": TITLES.get(code) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": f"urn:uuid:{correlation_id}",
        "code": code,
        "correlation_id": str(correlation_id),
        "errors": list(errors),
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    correlation_id: UUID,
    *,
    errors: Sequence[Mapping[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Return a `application/problem+json` response."""
    content = json.dumps(problem_body(status, code, detail, correlation_id, errors, extra), ensure_ascii=False)
    return Response(content, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


# ---- the error tree ------------------------------------------------------------------------------


class GatewayError(Exception):
    """Base of every error the gateway answers with a problem document."""

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BatchIdMismatch(GatewayError):
    """The body names another batch than the path."""

    status, code = 400, "BATCH_ID_MISMATCH"


class UnknownPipelineRequested(GatewayError):
    """`requested_pipeline` is neither a pipeline nor a step of the catalog."""

    status, code = 422, "UNKNOWN_PIPELINE"


class AuthenticationRequired(GatewayError):
    """No bearer token was sent."""

    status, code = 401, "AUTHENTICATION_REQUIRED"


class InvalidToken(GatewayError):
    """The bearer token is malformed, expired, or not ours."""

    status, code = 401, "INVALID_TOKEN"


class Forbidden(GatewayError):
    """The caller may not act on this batch."""

    status, code = 403, "FORBIDDEN"


class BatchNotFound(GatewayError):
    """The worker knows no registered batch with this id."""

    status, code = 404, "BATCH_NOT_FOUND"


class PayloadTooLarge(HTTPException):
    """The request body exceeds the configured cap (an HTTPException so FastAPI's body reader lets it through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds {limit} bytes.")


class RateLimited(GatewayError):
    """The client used up its allowance for this endpoint."""

    status, code = 429, "RATE_LIMITED"


class ServiceUnavailable(GatewayError):
    """A dependency is unreachable; the client should retry after `Retry-After` seconds."""

    status, code = 503, "SERVICE_UNAVAILABLE"


class BrokerUnavailable(ServiceUnavailable):
    """The command could not be acknowledged by the broker in time."""

    code = "BROKER_UNAVAILABLE"


class StateUnavailable(ServiceUnavailable):
    """The worker's views did not answer (down, or partitions rebalancing) within the retry budget."""

    code = "WORKER_UNAVAILABLE"


class WorkerError(GatewayError):
    """The worker answered something we cannot use (bad internal token, malformed body, server error)."""

    status, code = 502, "WORKER_ERROR"


# ---- handlers ------------------------------------------------------------------------------------

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}
_HTTP_DETAILS = {
    404: "No resource at this path; see /docs for the API.",
    405: "This method is not allowed here; see the Allow header.",
}
_LOCATIONS = {"body", "path", "query", "header"}


def field_errors(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Translate pydantic errors into `{field, location, message, type}`, never echoing input unescaped."""
    errors = []
    for err in raw:
        loc = [str(part) for part in err.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        kind = str(err.get("type", "value_error"))
        message = str(err.get("msg", "Invalid value"))
        if kind == "extra_forbidden":
            message = "Unknown field; it is not part of this request"
        elif kind == "json_invalid":
            message = f"Malformed JSON: {err.get('ctx', {}).get('error', 'decode error')}"
            path = []
        errors.append(
            {
                "field": ".".join(safe_text(p) for p in path) or location,
                "location": location,
                "message": safe_text(message, limit=300),
                "type": kind,
            }
        )
    return errors


def _finish(request: Request, status: int, code: str, detail: str, **kwargs: Any) -> Response:
    ctx = request_context(request)
    ctx.code = code
    return problem_response(status, code, detail, ctx.correlation_id, **kwargs)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    if exc.status >= 500:
        log.warning("%s: %s", exc.code, exc.detail)
    return _finish(request, exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers, extra=exc.extra)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return _finish(request, 400, "MALFORMED_JSON", "The request body is not valid JSON.", errors=errors)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and "json" not in content_type.lower() and any(e["field"] == "body" for e in errors):
        return _finish(
            request, 415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as JSON with Content-Type: application/json."
        )
    return _finish(request, 422, "VALIDATION_ERROR", "The request is invalid; see `errors`.", errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    detail = _HTTP_DETAILS.get(exc.status_code) or safe_text(exc.detail, limit=200)
    return _finish(request, exc.status_code, code, detail, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every handled error with problem+json (unhandled ones are caught by the observability middleware)."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
