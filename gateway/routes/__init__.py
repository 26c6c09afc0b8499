"""The only place routers are included."""

from fastapi import FastAPI

from gateway.routes import batches, events, health, pipelines

ROUTERS = (pipelines.router, batches.router, events.router, health.router)


def install_routes(app: FastAPI) -> None:
    """Include every router on the app itself.

    Not through one umbrella router: FastAPI 0.165 keeps included routers as nested branches that it walks on
    every request, and the extra level cost ~6% of the gateway's CPU per POST (py-spy, bench/README.md).
    """
    for router in ROUTERS:
        app.include_router(router)
