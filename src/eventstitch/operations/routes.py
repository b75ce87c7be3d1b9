"""Liveness and metrics: `/health` and `/metrics`, open without a token for probes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eventstitch import metrics
from eventstitch.storage.errors import StorageError

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness and database reachability")
async def health(request: Request, response: Response) -> dict[str, object]:
    ctx = request.app.state.ctx
    try:
        await ctx.storage.ping()
    except (StorageError, OSError) as exc:
        response.status_code = 503
        return {"ok": False, "database": "unreachable", "error": str(exc)[:200]}
    return {"ok": True, "database": "ok", "queue_depth": ctx.storage.queue_depth()}


@router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    metrics.QUEUE_DEPTH.set(request.app.state.ctx.storage.queue_depth())
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
