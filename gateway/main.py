"""The gateway app: `create_app()` wires settings, collaborators, middleware, routes and error handlers."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from contracts.pipelines import load_catalog
from gateway.cors import CorsMiddleware
from gateway.deps import Services
from gateway.docs_assets import install_docs
from gateway.errors import install_error_handlers
from gateway.metrics import GatewayMetrics
from gateway.observability import AuditLog, ObservabilityMiddleware
from gateway.openapi import document
from gateway.publisher import KafkaCommandPublisher, Publisher
from gateway.push import PushHub
from gateway.ratelimit import Limiter
from gateway.routes import install_routes
from gateway.security import Authenticator
from gateway.settings import GatewaySettings
from gateway.state_client import StateClient, WorkerStateClient
from gateway.tickets import StreamTickets
from gateway.web_page import install_web_page

log = logging.getLogger("gateway")

DESCRIPTION = """
The front door of Batch Conductor for the React frontend.

**Follow a request to its outcome**

1. `POST /v1/batches/{batch_id}/pipelines` with `{"requested_pipeline": "ai_feedback"}`
   (`GET /v1/pipelines` lists the valid names). The answer is `202` with a `correlation_id` and a `status_url`
   once the broker has acknowledged the command.
2. `GET` the `status_url` (`/v1/batches/{batch_id}/pipelines/{correlation_id}`): `pending` until the worker has
   resolved the request, then `resolved` with the ordered steps, or `failed` with a `reason_code`.
3. `GET /v1/batches/{batch_id}/status` shows the batch's per-step progress and its recent requests.

**Conventions**: send `X-Correlation-ID` (a UUID) to choose the request's correlation id, else one is minted; it
comes back on every response and is the command's `correlation_id`. Every error is RFC 9457
`application/problem+json` with a stable `code`, the `correlation_id` and per-field `errors`. Rate limits answer
`429` with `Retry-After` and `RateLimit-*` headers; an unreachable broker or worker answers `503` with `Retry-After`.
In auth mode `jwt`, send `Authorization: Bearer <JWT>` (use **Authorize** above); a user reads and acts only on
batches registered to them, role `admin` on any.
"""

EXPOSED_HEADERS = [
    "X-Correlation-ID",
    "Location",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]


def create_app(
    settings: GatewaySettings | None = None,
    *,
    publisher: Publisher | None = None,
    state_client: StateClient | None = None,
) -> FastAPI:
    """Build the gateway; `publisher` and `state_client` replace the Kafka and worker clients (tests)."""
    settings = settings or GatewaySettings()
    metrics = GatewayMetrics()
    state = state_client or WorkerStateClient(settings, metrics)
    services = Services(
        settings=settings,
        catalog=load_catalog(settings.pipelines_file),
        authenticator=Authenticator(settings),
        limiter=Limiter(settings, metrics),
        publisher=publisher or KafkaCommandPublisher(settings, metrics),
        state=state,
        metrics=metrics,
        push=PushHub(settings, state, metrics),
        tickets=StreamTickets(settings),
    )
    audit = AuditLog(settings.audit_log, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auth_mode == "none":
            log.warning(
                "AUTH MODE 'none': every caller is user %r with full access to every batch. Development only; "
                "never expose this gateway. Set CONDUCTOR_GATEWAY_AUTH_MODE=jwt for real use.",
                settings.dev_user,
            )
        await audit.start()
        await services.publisher.start()
        log.info(
            "gateway ready on port %d: broker %s, worker %s, auth %s, rate limits %s",
            settings.port,
            settings.bootstrap_servers,
            settings.worker_url,
            settings.auth_mode,
            "on" if settings.rate_limit_enabled else "off",
        )
        try:
            yield
        finally:
            await services.push.close()
            await services.publisher.stop()
            await services.state.aclose()
            await audit.stop()

    app = FastAPI(
        title="Batch Conductor gateway",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # both served from packaged assets by install_docs (no CDN)
        redoc_url=None,
        # Operation ids are the route functions' names (`request_pipeline`, `get_batch_status`, ...): the links
        # name them, and generated clients read better.
        generate_unique_id_function=lambda route: route.name,
        # FastAPI's native OpenTelemetry hooks cost per request and nothing here exports them; Prometheus it is.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        openapi_tags=[
            {"name": "pipelines", "description": "Request pipelines and follow them to their outcome."},
            {"name": "batches", "description": "Batch state as the worker projects it."},
            {"name": "operations", "description": "Probes and metrics."},
        ],
    )
    app.state.services = services

    install_routes(app)
    install_docs(app)
    if settings.web_dir is not None:
        install_web_page(app, settings.web_dir)
    install_error_handlers(app)
    # Added last = outermost. CORS goes outside everything, so that even the observability middleware's own
    # answers (413 before parsing, last-resort 500) carry CORS headers and the frontend can read them.
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=metrics,
        audit=audit,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )
    app.add_middleware(
        CorsMiddleware,
        origins=settings.cors_origins,
        methods=["GET", "POST"],
        headers=["Authorization", "Content-Type", "X-Correlation-ID"],
        expose=EXPOSED_HEADERS,
    )
    document(app, services.catalog, settings.auth_mode)
    return app


def run(settings: GatewaySettings) -> None:
    """Serve the gateway with uvicorn (one process; scale out with replicas and a shared rate-limit storage)."""
    import uvicorn

    from gateway.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    tune_gc()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # our JSON logging, configured above
        access_log=False,  # the audit record written by our middleware replaces it
        proxy_headers=False,  # X-Forwarded-For is honoured only from CONDUCTOR_GATEWAY_TRUSTED_PROXIES, by us
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,  # backstop: streams end at once on shutdown (below)
    )
    hub = app.state.services.push

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn waits for open responses to finish before the app's lifespan shutdown runs: end every event
            # stream first, or shutdown would wait for streams that never end.
            await hub.close()
            await super().shutdown(sockets)

    Server(config).run()


# Young-generation threshold of the cyclic garbage collector in the serving process (CPython's default: 700).
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path of the serving process.

    Under load it took ~10% of the gateway's CPU (py-spy: about three full collections a second, each re-scanning
    the ~100k objects of the imported modules, the app and its models). Those live as long as the process: freeze
    them out of the collector's sight, and collect the young generation less often. Reference counting still frees
    everything that is not in a cycle at once; cycles are still collected, a little later.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
