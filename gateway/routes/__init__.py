"""The only place routers are included."""

from fastapi import APIRouter

from gateway.routes import batches, events, health, pipelines

api_router = APIRouter()
api_router.include_router(pipelines.router)
api_router.include_router(batches.router)
api_router.include_router(events.router)
api_router.include_router(health.router)
