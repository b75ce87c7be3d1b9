"""Creating, changing and removing event sources; the source check every ingest route makes."""

from __future__ import annotations

import uuid
from typing import Any

from eventstitch.context import AppContext
from eventstitch.errors import Conflict, Forbidden, NotFound, Unprocessable
from eventstitch.ids import now_ms
from eventstitch.sources.schemas import SourceCreate
from eventstitch.storage.interfaces import DuplicateSource, SourceRecord


async def create(*, ctx: AppContext, source_in: SourceCreate) -> SourceRecord:
    """Store a new source; its id is generated when not given."""
    now = now_ms()
    record = SourceRecord(
        id=source_in.id or str(uuid.uuid4()),
        name=source_in.name,
        kind=source_in.kind,
        enabled=source_in.enabled,
        description=source_in.description,
        tags=tuple(source_in.tags),
        created_ms=now,
        updated_ms=now,
    )
    try:
        created = await ctx.storage.sources.create(record)
    except DuplicateSource:
        raise Conflict(f"source {record.id!r} exists already", reason="duplicate_source") from None
    ctx.sources.forget(record.id)
    return created


async def get(*, ctx: AppContext, source_id: str) -> SourceRecord:
    """One source, or NotFound."""
    source = await ctx.storage.sources.get(source_id)
    if source is None:
        raise NotFound(f"source {source_id!r} not found", reason="unknown_source")
    return source


async def list_all(*, ctx: AppContext) -> list[SourceRecord]:
    """Every source, oldest first."""
    return await ctx.storage.sources.list_all()


async def update(*, ctx: AppContext, source_id: str, changes: dict[str, Any]) -> SourceRecord:
    """Change only the given fields; takes effect for ingest at once in this process."""
    if not changes:
        raise Unprocessable("nothing to change: send at least one field", reason="empty_patch")
    updated = await ctx.storage.sources.update(source_id, changes, now_ms())
    ctx.sources.forget(source_id)
    if updated is None:
        raise NotFound(f"source {source_id!r} not found", reason="unknown_source")
    return updated


async def delete(*, ctx: AppContext, source_id: str) -> None:
    """Remove a source; the events it collected stay."""
    removed = await ctx.storage.sources.delete(source_id)
    ctx.sources.forget(source_id)
    if not removed:
        raise NotFound(f"source {source_id!r} not found", reason="unknown_source")


async def get_accepting(*, ctx: AppContext, source_id: str, kind: str) -> SourceRecord:
    """The source if it may take events of this ingest route, else the refusal to answer."""
    source = await ctx.sources.get(source_id)
    if source is None:
        raise NotFound(f"source {source_id!r} not found", reason="unknown_source")
    if not source.enabled:
        raise Forbidden(f"source {source_id!r} is disabled", reason="disabled_source")
    if source.kind != kind:
        raise Forbidden(
            f"source {source_id!r} is a {source.kind} source; this route takes {kind} sources",
            reason="wrong_source_kind",
        )
    return source
