"""Creating, changing and removing event sources; the source check every ingest route makes."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import secrets
import time
import uuid
from typing import Any

from eventstitch import paths, system
from eventstitch.config import MAX_RETRY_AFTER_SECONDS, MAX_WRITE_KEY_GRACE_SECONDS
from eventstitch.context import AppContext
from eventstitch.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    clip,
    clip_id,
)
from eventstitch.ids import now_ms
from eventstitch.sources.schemas import SOURCE_ID_PATTERN, SourceCreate, SourcePatch
from eventstitch.storage.errors import DuplicateSource
from eventstitch.storage.records import Shaping, SignatureRule, SourceRecord

SOURCE_ID = re.compile(SOURCE_ID_PATTERN)
WRITE_KEY = re.compile(r"[A-Za-z0-9_\-]{8,128}")
"""What a write key may look like: ours (`wk_` and 32 URL-safe characters) and the other
products' keys a user may bring along; anything else is never looked up."""


def new_write_key() -> str:
    """A fresh write key: 192 random bits, URL-safe, recognisable by its prefix."""
    return "wk_" + secrets.token_urlsafe(24)


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
        traits={name: paths.parse_rule(path) for name, path in source_in.traits.items()},
        delivery_id_path=tuple(source_in.delivery_id_path.split("."))
        if source_in.delivery_id_path
        else (),
        signature=source_in.signature.record() if source_in.signature else None,
        rate_limit=source_in.rate_limit.record() if source_in.rate_limit else None,
        shaping=_with_preset(
            source_in.shaping.record() if source_in.shaping else None, source_in.preset
        ),
        write_key=new_write_key() if source_in.kind == "tracker" else None,
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
        raise NotFound(f"source {clip_id(source_id)!r} not found", reason="unknown_source")
    return source


async def list_all(*, ctx: AppContext) -> list[SourceRecord]:
    """Every source, oldest first."""
    return await ctx.storage.sources.list_all()


async def list_page(
    *, ctx: AppContext, limit: int | None, cursor: str | None
) -> tuple[list[SourceRecord], str | None]:
    """One page of sources, oldest first, and the cursor of the next page (None at the end):
    hundreds of sources with their rules must not make one unbounded answer."""
    most = ctx.config.sources_max_limit
    size = ctx.config.sources_default_limit if limit is None else limit
    if not 1 <= size <= most:
        raise Unprocessable(
            f"limit must be between 1 and {most}, got {size}",
            errors=[{"field": "limit", "limit": most}],
            reason="bad_limit",
        )
    after = _read_cursor(cursor) if cursor is not None else None
    found = await ctx.storage.sources.list_page(limit=size + 1, after=after)
    if len(found) <= size:
        return found, None
    last = found[size - 1]
    token = f"{last.created_ms}:{last.id}".encode()
    return found[:size], base64.urlsafe_b64encode(token).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[int, str]:
    """A page cursor back as (created_ms, id), or 422 when it is not one we gave out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, source_id = text.partition(":")
        if SOURCE_ID.fullmatch(source_id) and stamp.isdigit() and len(stamp) <= 18:
            return int(stamp), source_id
    except (ValueError, UnicodeDecodeError):
        pass
    raise Unprocessable(
        f"cursor {clip(cursor, 40)!r} is not one this listing gave out",
        errors=[{"field": "cursor", "value": clip(cursor, 40)}],
        reason="bad_cursor",
    )


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
        changes["traits"] = {n: paths.parse_rule(p) for n, p in (patch.traits or {}).items()}
    if "tags" in changes:
        changes["tags"] = tuple(changes["tags"])
    current = await _refuse_system(ctx, source_id)
    if current is not None and "shaping" in changes and current.shaping is not None:
        # Which preset a source came from stays true whatever its shaping becomes.
        changes["shaping"] = _with_preset(changes["shaping"], current.shaping.preset)
    if current is not None:
        _refuse_unsigned_kind(
            changes.get("kind", current.kind), changes.get("signature", current.signature)
        )
        _refuse_shaped_kind(
            changes.get("kind", current.kind), changes.get("shaping", current.shaping)
        )
        if changes.get("kind") == "tracker" and current.write_key is None:
            changes["write_key"] = new_write_key()  # a tracker source is reached by its key
    updated = await ctx.storage.sources.update(source_id, changes, now_ms())
    ctx.sources.forget(source_id)
    if updated is None:
        raise NotFound(f"source {clip_id(source_id)!r} not found", reason="unknown_source")
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
        raise NotFound(f"source {clip_id(source_id)!r} not found", reason="unknown_source")
    await system.record(ctx=ctx, event_type="source-removed", properties={"source_id": source_id})


async def get_accepting(*, ctx: AppContext, source_id: str, kind: str) -> SourceRecord:
    """The source if it may take events of this ingest route, else the refusal to answer."""
    if not SOURCE_ID.fullmatch(source_id):
        # Checked before any lookup: an id no source can have is never read, cached or kept
        # whole, so junk ids cannot grow memory.
        raise NotFound(
            f"source {clip(source_id, 80)!r} not found: a source id is 1 to 64 letters, digits,"
            " '.', '_' or '-', starting with a letter or digit",
            errors=[{"field": "source_id", "value": clip(source_id, 80)}],
            reason="unknown_source",
        )
    source = await ctx.sources.get(source_id)
    if source is None:
        raise NotFound(f"source {clip_id(source_id)!r} not found", reason="unknown_source")
    if not source.enabled:
        raise Forbidden(f"source {clip_id(source_id)!r} is disabled", reason="disabled_source")
    if source.kind != kind:
        raise Forbidden(
            f"source {clip_id(source_id)!r} is a {source.kind} source;"
            f" this route takes {kind} sources",
            reason="wrong_source_kind",
        )
    return source


async def get_accepting_by_key(*, ctx: AppContext, write_key: str) -> SourceRecord:
    """The tracker source a write key names, if it may take events: 401 for a key that names
    none (or a previous key past its grace), 403 for a disabled or non-tracker source."""
    source = await ctx.sources.get_by_key(write_key) if WRITE_KEY.fullmatch(write_key) else None
    if source is None or not source.key_valid(write_key, now_ms()):
        raise Unauthorized(
            "the write key names no source; find it with GET /api/sources/{id}",
            errors=[{"field": "write_key"}],
            reason="unknown_write_key",
        )
    if not source.enabled:
        raise Forbidden(f"source {clip_id(source.id)!r} is disabled", reason="disabled_source")
    if source.kind != "tracker":
        raise Forbidden(
            f"source {clip_id(source.id)!r} is a {source.kind} source; write keys reach"
            " tracker sources",
            reason="wrong_source_kind",
        )
    return source


async def rotate_key(*, ctx: AppContext, source_id: str, grace_seconds: int | None) -> SourceRecord:
    """Give a tracker source a new write key; the old one keeps working for `grace_seconds`
    (the setting when None) so clients can move over without losing events."""
    grace = ctx.config.write_key_grace_seconds if grace_seconds is None else grace_seconds
    if not 0 <= grace <= MAX_WRITE_KEY_GRACE_SECONDS:
        raise Unprocessable(
            f"grace_seconds must be between 0 and {MAX_WRITE_KEY_GRACE_SECONDS}, got {grace}",
            errors=[{"field": "grace_seconds", "limit": MAX_WRITE_KEY_GRACE_SECONDS}],
            reason="bad_grace_seconds",
        )
    current = await get(ctx=ctx, source_id=source_id)
    if current.kind != "tracker":
        raise Unprocessable(
            f"source {clip_id(source_id)!r} is a {current.kind} source; write keys belong to"
            " tracker sources",
            errors=[{"field": "kind", "value": current.kind}],
            reason="wrong_source_kind",
        )
    now = now_ms()
    changes: dict[str, Any] = {
        "write_key": new_write_key(),
        "previous_write_key": current.write_key if grace else None,
        "previous_key_until_ms": now + grace * 1000 if grace and current.write_key else None,
    }
    updated = await ctx.storage.sources.update(source_id, changes, now)
    ctx.sources.forget(source_id)
    if updated is None:
        raise NotFound(f"source {clip_id(source_id)!r} not found", reason="unknown_source")
    await system.record(
        ctx=ctx,
        event_type="source-changed",
        properties={"source_id": source_id, "fields": ["write_key"]},
    )
    return updated


def admit(*, ctx: AppContext, source: SourceRecord) -> None:
    """Take one request from the source's rate-limit bucket, or refuse with 429."""
    bucket = ctx.sources.bucket(source.id)
    if bucket is None:
        return
    wait = bucket.take(time.monotonic())
    if wait:
        # Held to 1..3600 whatever the bucket says: a header is no place for a huge number.
        seconds = min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(min(wait, 1e9))))
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
            f"source {clip_id(source_id)!r} is Eventstitch's own and read-only",
            reason="read_only_source",
        )
    return source


def _with_preset(shaping: Shaping | None, preset: str | None) -> Shaping | None:
    """The shaping to store, recording the preset the source came from (an empty shaping
    when there is none: that changes nothing at ingest)."""
    if preset is None:
        return shaping
    return dataclasses.replace(shaping or Shaping(), preset=preset)


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
