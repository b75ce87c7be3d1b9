"""Profiles: reading them, finding them by identifier, erasing them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from eventstitch import system
from eventstitch.columnar import segments
from eventstitch.context import AppContext
from eventstitch.errors import BadRequest, NotFound, clip_id
from eventstitch.identity.normalise import normalise, valid_kind
from eventstitch.identity.rules import extract
from eventstitch.sources import service as sources_service
from eventstitch.storage.records import (
    CountQuery,
    EventFilter,
    EventRecord,
    Identifier,
    MergeRecord,
    ProfileRecord,
)


async def get(*, ctx: AppContext, profile_id: str) -> ProfileRecord:
    """A profile by id (a merged one too: its `merged_into` names the survivor), or NotFound."""
    profile = await ctx.storage.profiles.get(profile_id)
    if profile is None:
        raise NotFound(f"profile {clip_id(profile_id)!r} not found", reason="unknown_profile")
    return profile


async def get_live(*, ctx: AppContext, profile_id: str) -> ProfileRecord:
    """The live profile an id stands for, following merges."""
    profile = await get(ctx=ctx, profile_id=profile_id)
    for _ in range(32):  # merges are flattened on write; this only guards against a cycle
        if profile.merged_into is None:
            return profile
        profile = await get(ctx=ctx, profile_id=profile.merged_into)
    raise NotFound(f"profile {profile_id!r} has no live survivor", reason="unknown_profile")


async def list_merges(*, ctx: AppContext, profile_id: str) -> list[MergeRecord]:
    """Merges into or out of this profile, and refused ones, oldest first."""
    return await ctx.storage.profiles.merges(profile_id)


async def recent_events(*, ctx: AppContext, profile_id: str, limit: int = 20) -> list[EventRecord]:
    """The profile's newest events."""
    return await ctx.storage.events.list_page(
        EventFilter(profile_id=profile_id), limit=limit, before_id=None
    )


def parse_identifier(ctx: AppContext, text: str) -> Identifier:
    """`email:A@A.com` to ("email", "a@a.com"), normalised as at ingest."""
    kind, sep, raw = text.partition(":")
    if not sep or not valid_kind(kind):
        raise BadRequest(
            "identifier must be kind:value, e.g. email:a@a.com",
            errors=[{"field": "identifier", "value": text[:80]}],
            reason="bad_query",
        )
    policy = ctx.policy
    value = normalise(kind, raw, default_region=policy.default_region, junk=policy.junk)
    if value is None:
        raise BadRequest(
            f"{raw[:80]!r} does not identify anyone as a {kind}",
            errors=[{"field": "identifier", "value": text[:80]}],
            reason="bad_query",
        )
    return kind, value


async def find(*, ctx: AppContext, identifier: Identifier) -> list[ProfileRecord]:
    """The live profile holding an identifier, as a list (empty when nobody holds it)."""
    profile = await ctx.storage.profiles.find(identifier)
    return [profile] if profile else []


async def erase(*, ctx: AppContext, profile_id: str) -> tuple[str, int, int]:
    """Right to be forgotten: delete the live profile, the ones merged into it, their
    identifiers, sessions and events. Returns (live id, profiles removed, events removed)."""
    live = await get_live(ctx=ctx, profile_id=profile_id)
    profiles, events = await ctx.storage.profiles.erase(live.id)
    if events:
        # Their copies in the insight segments go too (after a round in progress: a thread).
        await asyncio.to_thread(segments.invalidate, ctx)
    return live.id, profiles, events


BACKFILL_PAGE = 500


async def backfill(
    *, ctx: AppContext, source_id: str | None, progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Re-apply the current rules of one source (or every source with rules) to its stored
    events, newest first. Resumes where an interrupted run stopped; safe to run twice."""
    if source_id is not None:
        sources = [await sources_service.get(ctx=ctx, source_id=source_id)]
    else:
        sources = [s for s in await sources_service.list_all(ctx=ctx) if s.identification]
    report = {"sources": 0, "events": 0, "linked": 0}
    for source in sources:
        name = f"backfill:{source.id}"
        before = await ctx.storage.events.checkpoint(name)
        while True:
            page = await ctx.storage.events.list_page(
                EventFilter(source_ids=(source.id,)), limit=BACKFILL_PAGE, before_id=before
            )
            items = []
            for event in page:
                claim = extract(
                    event.properties, event.type, source.identification, source.traits, ctx.policy
                )
                if claim is not None:
                    items.append((event.id, event.received_ms, claim))
            before = page[-1].id if len(page) == BACKFILL_PAGE else None
            report["linked"] += await ctx.storage.events.backfill(items, checkpoint=(name, before))
            report["events"] += len(page)
            if progress is not None:
                progress(len(page))
            if before is None:
                break
        report["sources"] += 1
    await system.record(ctx=ctx, event_type="backfill-finished", properties=dict(report))
    return report


async def count_events(*, ctx: AppContext, source_id: str | None) -> int:
    """How many events a backfill over these sources will read (for a progress bar)."""
    source_ids = (source_id,) if source_id else ()
    result = await ctx.storage.events.count(
        EventFilter(source_ids=source_ids), CountQuery(group_by=())
    )
    return result.total
