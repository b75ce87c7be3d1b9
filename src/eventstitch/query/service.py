"""Reading events back: pages of events, one event, and grouped counts (insights)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from eventstitch.context import AppContext
from eventstitch.errors import BadRequest, NotFound, clip, clip_id, query_too_slow
from eventstitch.ids import ms_to_iso, now_ms
from eventstitch.query.schemas import TIME_DIMENSIONS, encode_cursor, event_json
from eventstitch.storage.errors import QueryTimeout
from eventstitch.storage.records import (
    CountQuery,
    CountResult,
    EventFilter,
    EventRecord,
    GroupBy,
    PropertyPath,
    property_label,
)

_BUCKET_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_LATE_COMMIT_MS = 5_000
"""How far back `follow` looks again: with several writers, an event can commit a little
after a newer one, so each poll re-reads this window and skips what it has shown."""


async def list_page(
    *, ctx: AppContext, event_filter: EventFilter, limit: int | None, before_id: str | None
) -> tuple[list[EventRecord], str | None]:
    """One page of events, newest first, and the cursor of the next page (None at the end)."""
    size = page_size(ctx=ctx, limit=limit)
    try:
        events = await ctx.storage.events.list_page(
            event_filter, limit=size + 1, before_id=before_id
        )
    except QueryTimeout:
        raise query_too_slow(ctx.config.query_timeout_ms) from None
    if len(events) > size:
        return events[:size], encode_cursor(events[size - 1].id)
    return events, None


async def get(*, ctx: AppContext, event_id: str) -> EventRecord:
    """One event by id, or NotFound."""
    event = await ctx.storage.events.get(event_id)
    if event is None:
        raise NotFound(f"event {clip_id(event_id)!r} not found", reason="unknown_event")
    return event


async def count(
    *,
    ctx: AppContext,
    event_filter: EventFilter,
    group_by: tuple[GroupBy, ...],
    distinct: PropertyPath | None,
) -> dict[str, Any]:
    """Counts of matching events by the given dimensions, rendered; a lone time dimension with a
    `since` bound is a complete series, with zero for the intervals that had no events."""
    query = CountQuery(
        group_by=group_by, distinct=distinct, max_rows=ctx.config.max_insight_buckets
    )
    try:
        result = await ctx.storage.events.count(event_filter, query)
    except QueryTimeout:
        raise query_too_slow(ctx.config.query_timeout_ms) from None
    rows = [_row_json(group_by, row.keys, row.count, row.distinct) for row in result.rows]
    if len(group_by) == 1 and group_by[0].dimension in TIME_DIMENSIONS:
        rows = _fill_series(ctx, event_filter, group_by[0], result, rows, distinct is not None)
    return {
        "by": [g.label for g in group_by],
        "distinct": property_label(distinct) if distinct else None,
        "total": result.total,
        "rows": rows,
        "truncated": result.truncated,
        "from_rollup": result.from_rollup,
    }


def _row_json(
    group_by: tuple[GroupBy, ...], keys: tuple[Any, ...], n: int, distinct: int | None
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for group, key in zip(group_by, keys, strict=True):
        row[group.label] = ms_to_iso(key) if group.dimension in TIME_DIMENSIONS else key
    row["count"] = n
    if distinct is not None:
        row["distinct"] = distinct
    return row


def _fill_series(
    ctx: AppContext,
    event_filter: EventFilter,
    group: GroupBy,
    result: CountResult,
    rows: list[dict[str, Any]],
    with_distinct: bool,
) -> list[dict[str, Any]]:
    if event_filter.since_ms is None or result.truncated:
        return rows
    size = _BUCKET_MS[group.dimension]
    start = event_filter.since_ms - event_filter.since_ms % size
    end = event_filter.until_ms if event_filter.until_ms is not None else now_ms()
    buckets = range(start, end, size)
    if len(buckets) > ctx.config.max_insight_buckets:
        raise BadRequest(
            f"{len(buckets)} {group.dimension} intervals exceed the limit of "
            f"{ctx.config.max_insight_buckets}; narrow since/until or use a longer interval",
            errors=[{"field": "by", "limit": ctx.config.max_insight_buckets}],
            reason="too_many_buckets",
        )
    found = {row[group.label]: row for row in rows}
    filled = []
    for bucket in buckets:
        label = ms_to_iso(bucket)
        empty = {group.label: label, "count": 0, **({"distinct": 0} if with_distinct else {})}
        filled.append(found.get(label, empty))
    return filled


def page_size(*, ctx: AppContext, limit: int | None) -> int:
    """The page size a listing asked for, within the configured bounds (400 otherwise)."""
    if limit is None:
        return ctx.config.query_default_limit
    if not 1 <= limit <= ctx.config.query_max_limit:
        raise BadRequest(
            f"limit must be between 1 and {ctx.config.query_max_limit}",
            # clipped text: an int beyond 64 bits would not even serialise
            errors=[
                {"field": "limit", "value": clip(limit, 40), "limit": ctx.config.query_max_limit}
            ],
            reason="bad_query",
        )
    return limit


async def follow(
    *, ctx: AppContext, event_filter: EventFilter, interval: float, backlog: int
) -> AsyncIterator[EventRecord]:
    """Yield the last `backlog` events, then every new one as it is committed, oldest first."""
    recent, _ = await list_page(
        ctx=ctx, event_filter=event_filter, limit=max(backlog, 1), before_id=None
    )
    newest_ms = recent[0].received_ms if recent else now_ms()
    # Each poll re-reads a window reaching back before the start: what it holds now is old,
    # shown as backlog or not. Newer than `recent[0]` is new, even if it committed meanwhile.
    stored = await _window(ctx, event_filter, newest_ms - _LATE_COMMIT_MS) if recent else []
    seen: deque[str] = deque(maxlen=100_000)
    seen_set: set[str] = set()

    def mark(event: EventRecord) -> None:
        if len(seen) == seen.maxlen:
            seen_set.discard(seen[0])
        seen.append(event.id)
        seen_set.add(event.id)

    for event in [*recent, *(e for e in stored if e.id <= recent[0].id)]:
        mark(event)
    for event in reversed(recent[:backlog] if backlog else []):
        yield event
    while True:
        await asyncio.sleep(interval)
        window = await _window(ctx, event_filter, newest_ms - _LATE_COMMIT_MS)
        for event in sorted((e for e in window if e.id not in seen_set), key=lambda e: e.id):
            mark(event)
            newest_ms = max(newest_ms, event.received_ms)
            yield event


async def _window(ctx: AppContext, event_filter: EventFilter, since_ms: int) -> list[EventRecord]:
    """Every matching event received at or after `since_ms`, paged so a burst is not cut off."""
    window = dataclasses.replace(event_filter, since_ms=since_ms)
    found: list[EventRecord] = []
    before: str | None = None
    while True:
        page = await ctx.storage.events.list_page(window, limit=500, before_id=before)
        found.extend(page)
        if len(page) < 500:
            return found
        before = page[-1].id


def event_line(event: EventRecord) -> str:
    """An event as one line of JSON (JSON Lines), for `tail --json`."""
    return orjson.dumps(event_json(event)).decode()


async def conversion(*, ctx: AppContext, event_filter: EventFilter, by: str) -> dict[str, Any]:
    """Per source or type: profile-less events, how many were converted, by which kind."""
    dimension = GroupBy("source" if by == "source" else "type")
    limit = ctx.config.max_insight_buckets
    try:
        totals = await ctx.storage.events.count(
            event_filter, CountQuery(group_by=(dimension,), max_rows=limit)
        )
        converted = await ctx.storage.events.count(
            dataclasses.replace(event_filter, converted=True),
            CountQuery(group_by=(dimension, GroupBy("converted_kind")), max_rows=limit),
        )
    except QueryTimeout:
        raise query_too_slow(ctx.config.query_timeout_ms) from None
    kinds: dict[str, dict[str, int]] = {}
    for row in converted.rows:
        kinds.setdefault(row.keys[0], {})[row.keys[1]] = row.count
    rows = []
    for row in totals.rows:
        by_kind = kinds.get(row.keys[0], {})
        done = sum(by_kind.values())
        rows.append(
            {
                by: row.keys[0],
                "profile_less": row.count,
                "converted": done,
                "rate": round(done / row.count, 4) if row.count else 0.0,
                "by_kind": by_kind,
            }
        )
    return {"by": by, "rows": rows}
