"""Liveness, readiness and Prometheus metrics: no authentication, no rate limit."""

import asyncio
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from gateway.context import request_context
from gateway.deps import get_services
from gateway.errors import PROBLEM_JSON, problem_body, problem_response
from gateway.models import CheckStatus, HealthView, ReadinessView

router = APIRouter(tags=["operations"])
_EXAMPLE_ID = UUID("1b8315aa-c3c0-48da-a286-5f5ec97b5cc5")


@router.get("/healthz", response_model=HealthView, summary="Liveness: the process answers")
async def healthz() -> HealthView:
    """Return ok while the event loop runs."""
    return HealthView()


@router.get(
    "/readyz",
    response_model=ReadinessView,
    summary="Readiness: producer connected and worker reachable",
    responses={
        503: {
            "description": "A check fails; `checks` says which.",
            "content": {
                PROBLEM_JSON: {
                    "example": problem_body(
                        503,
                        "NOT_READY",
                        "Not ready: worker failing.",
                        _EXAMPLE_ID,
                        extra={"checks": {"broker": "ok", "worker": "failing"}},
                    )
                }
            },
        }
    },
)
async def readyz(request: Request) -> Response:
    """Return 200 when the broker and the worker both answer, else 503 with the failing checks."""
    services, ctx = get_services(request), request_context(request)
    broker, worker = await asyncio.gather(services.publisher.check(), services.state.check())
    checks = {
        "broker": CheckStatus.OK if broker else CheckStatus.FAILING,
        "worker": CheckStatus.OK if worker else CheckStatus.FAILING,
    }
    if broker and worker:
        return JSONResponse(ReadinessView(status="ready", checks=checks).model_dump(mode="json"))
    failing = ", ".join(name for name, check in checks.items() if check is CheckStatus.FAILING)
    ctx.code = "NOT_READY"
    return problem_response(
        503, "NOT_READY", f"Not ready: {failing} failing.", ctx.correlation_id, extra={"checks": checks}
    )


@router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response)
async def metrics(request: Request) -> Response:
    """Return every gateway metric in the Prometheus text format."""
    registry = get_services(request).metrics
    return Response(registry.render(), media_type=registry.content_type)
