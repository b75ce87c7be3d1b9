"""Creating, changing and removing event sources; the source check every ingest route makes."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from eventstitch import system
from eventstitch.context import AppContext
from eventstitch.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unprocessable
from eventstitch.ids import now_ms
from eventstitch.sources.schemas import SourceCreate, SourcePatch
from eventstitch.storage.errors import DuplicateSource
from eventstitch.storage.records import Shaping, SignatureRule, SourceRecord


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
        identification=tuple(rule.record() for rule in source_in.identification),
        traits={name: tuple(path.split(".")) for name, path in source_in.traits.items()},
        delivery_id_path=tuple(source_in.delivery_id_path.split("."))
        if source_in.delivery_id_path
        else (),
        signature=source_in.signature.record() if source_in.signature else None,
        rate_limit=source_in.rate_limit.record() if source_in.rate_limit else None,
        shaping=source_in.shaping.record() if source_in.shaping else None,
    )
    _refuse_unsigned_kind(record.kind, record.signature)
    _refuse_shaped_kind(record.kind, record.shaping)
    try:
        created = await ctx.storage.sources.create(record)
    except DuplicateSource:
        raise Conflict(f"source {record.id!r} exists already", reason="duplicate_source") from None
    ctx.sources.forget(record.id)
    await system.record(
        ctx=ctx,
        event_type="source-created",
        properties={"source_id": record.id, "kind": record.kind},
    )
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


async def update(*, ctx: AppContext, source_id: str, patch: SourcePatch) -> SourceRecord:
    """Change only the fields sent; takes effect for ingest at once in this process."""
    changes: dict[str, Any] = patch.model_dump(exclude_unset=True)
    if not changes:
        raise Unprocessable("nothing to change: send at least one field", reason="empty_patch")
    if "delivery_id_path" in patch.model_fields_set:
        path = patch.delivery_id_path
        changes["delivery_id_path"] = tuple(path.split(".")) if path else ()
    nullable = ("signature", "rate_limit", "shaping")
    for key in nullable:  # null is meaningful here: unsigned, the default, unshaped
        if key in patch.model_fields_set:
            value = getattr(patch, key)
            changes[key] = value.record() if value is not None else None
    if None in (v for k, v in changes.items() if k not in nullable):
        field = next(k for k, v in changes.items() if v is None and k not in nullable)
        raise Unprocessable(f"{field} may not be null", errors=[{"field": field}])
    if "identification" in changes:
        changes["identification"] = tuple(rule.record() for rule in patch.identification or ())
    if "traits" in changes:
        changes["traits"] = {n: tuple(p.split(".")) for n, p in (patch.traits or {}).items()}
    if "tags" in changes:
        changes["tags"] = tuple(changes["tags"])
    current = await _refuse_system(ctx, source_id)
    if current is not None:
        _refuse_unsigned_kind(
            changes.get("kind", current.kind), changes.get("signature", current.signature)
        )
        _refuse_shaped_kind(
            changes.get("kind", current.kind), changes.get("shaping", current.shaping)
        )
    updated = await ctx.storage.sources.update(source_id, changes, now_ms())
    ctx.sources.forget(source_id)
    if updated is None:
        raise NotFound(f"source {source_id!r} not found", reason="unknown_source")
    event_type = "source-disabled" if changes.get("enabled") is False else "source-changed"
    await system.record(
        ctx=ctx,
        event_type=event_type,
        properties={"source_id": source_id, "fields": sorted(patch.model_fields_set)},
    )
    return updated


async def delete(*, ctx: AppContext, source_id: str) -> None:
    """Remove a source; the events it collected stay."""
    await _refuse_system(ctx, source_id)
    removed = await ctx.storage.sources.delete(source_id)
    ctx.sources.forget(source_id)
    if not removed:
        raise NotFound(f"source {source_id!r} not found", reason="unknown_source")
    await system.record(ctx=ctx, event_type="source-removed", properties={"source_id": source_id})


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


def admit(*, ctx: AppContext, source: SourceRecord) -> None:
    """Take one request from the source's rate-limit bucket, or refuse with 429."""
    bucket = ctx.sources.bucket(source.id)
    if bucket is None:
        return
    wait = bucket.take(time.monotonic())
    if wait:
        seconds = max(1, math.ceil(wait))
        raise TooManyRequests(
            f"source {source.id!r} is over its rate limit of {bucket.rate:g} requests per"
            f" second (burst {bucket.burst}); nothing was stored, retry in {seconds} s",
            errors=[{"field": "rate_limit", "per_second": bucket.rate, "burst": bucket.burst}],
            headers={"Retry-After": str(seconds)},
        )


async def _refuse_system(ctx: AppContext, source_id: str) -> SourceRecord | None:
    source = await ctx.storage.sources.get(source_id)
    if source is not None and source.kind == "system":
        raise Forbidden(
            f"source {source_id!r} is Eventstitch's own and read-only", reason="read_only_source"
        )
    return source


def _refuse_shaped_kind(kind: str, shaping: Shaping | None) -> None:
    if shaping is not None and kind != "webhook":
        raise Unprocessable(
            f"shaping applies to webhook sources only, not {kind} sources",
            errors=[{"field": "shaping"}],
        )


def _refuse_unsigned_kind(kind: str, signature: SignatureRule | None) -> None:
    if signature is not None and kind != "webhook":
        raise Unprocessable(
            f"signature applies to webhook sources only, not {kind} sources",
            errors=[{"field": "signature"}],
        )
