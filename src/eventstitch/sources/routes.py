"""HTTP for managing event sources."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from eventstitch.sources import service
from eventstitch.sources.schemas import (
    KeyRotation,
    SourceCreate,
    SourceList,
    SourceOut,
    SourcePatch,
)

router = APIRouter(prefix="/api/sources", tags=["sources"])


@router.post("", status_code=201, summary="Create a source")
async def create_source(request: Request, body: SourceCreate) -> SourceOut:
    return SourceOut.of(await service.create(ctx=request.app.state.ctx, source_in=body))


@router.get("", summary="List sources, a page at a time")
async def list_sources(
    request: Request, limit: int | None = None, cursor: str | None = None
) -> SourceList:
    found, next_cursor = await service.list_page(
        ctx=request.app.state.ctx, limit=limit, cursor=cursor
    )
    return SourceList(sources=[SourceOut.of(s) for s in found], next_cursor=next_cursor)


@router.get("/{source_id}", summary="One source")
async def get_source(request: Request, source_id: str) -> SourceOut:
    return SourceOut.of(await service.get(ctx=request.app.state.ctx, source_id=source_id))


@router.patch("/{source_id}", summary="Change the fields sent, and only those")
async def update_source(request: Request, source_id: str, body: SourcePatch) -> SourceOut:
    return SourceOut.of(
        await service.update(ctx=request.app.state.ctx, source_id=source_id, patch=body)
    )


@router.post(
    "/{source_id}/rotate-key",
    summary="Give a tracker source a new write key; the old one works for a grace period",
)
async def rotate_key(
    request: Request, source_id: str, body: KeyRotation | None = None
) -> SourceOut:
    return SourceOut.of(
        await service.rotate_key(
            ctx=request.app.state.ctx,
            source_id=source_id,
            grace_seconds=body.grace_seconds if body else None,
        )
    )


@router.delete("/{source_id}", status_code=204, summary="Remove a source; its events stay")
async def delete_source(request: Request, source_id: str) -> Response:
    await service.delete(ctx=request.app.state.ctx, source_id=source_id)
    return Response(status_code=204)
