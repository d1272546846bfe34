"""GET /health: is the service up, and with which models and gallery."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ..gallery.replica import replica_status
from .deps import ServicesDep
from .schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    response_model_exclude_none=True,  # the replica fields exist for PostgreSQL galleries only
    summary="Service status, models and gallery size",
)
async def health(services: ServicesDep) -> dict:
    engine = services.engine
    # A database read: off the event loop (the last value read while the store is unreachable).
    next_expiry = await run_in_threadpool(services.sweeper.next_expiry) if services.sweeper else None
    return {
        "status": "ok",
        "embedder": engine.describe(),
        "detector": engine.detector.name,
        "gallery": {
            **services.gallery.stats(),
            **(replica_status(services.gallery) or {}),
            "next_expiry": next_expiry,
        },
        "pool": {
            "workers": services.pool.workers,
            "queue_size": services.pool.queue_size,
            "pending": services.pool.pending,
        },
    }
