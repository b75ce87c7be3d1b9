"""`GET /api/insights`: any aggregate of events grouped by up to three dimensions, served by
the hourly rollup when it answers exactly, else by a scan of the store that reads matching
events page by page and aggregates them here (one implementation, so both backends give the
same numbers), or by Parquet segments of sealed hours plus the hot tail after them, in DuckDB
(columnar/)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, tzinfo
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import orjson

from eventstitch.columnar import parquet, segments, tail
from eventstitch.columnar import query as columnar
from eventstitch.context import AppContext
from eventstitch.errors import BadRequest, query_too_slow
from eventstitch.ids import now_ms
from eventstitch.paths import has_each, values
from eventstitch.query import buckets
from eventstitch.query.insight_params import (
    Dimension,
    InsightQuery,
    is_number,
    matches,
)
from eventstitch.query.insight_rows import (
    EMPTY,
    ROLLUP_DIMENSIONS,
    Group,
    Key,
    fold_top,
    render,
    render_counts,
)
from eventstitch.storage.errors import QueryTimeout
from eventstitch.storage.records import (
    CommitPosition,
    CommitSpan,
    CountQuery,
    EventFilter,
    EventRecord,
    GroupBy,
)

T = TypeVar("T")
V = TypeVar("V")

SCAN_PAGE = 1000
TAIL_PAGE = 5000
"""Events a page of the hot tail holds when read as values (a few small columns each)."""
HOUR_MS = 3_600_000


@dataclasses.dataclass(slots=True)
class _Gathered:
    groups: dict[Key, Group]
    total: int = 0
    truncated: bool = False
    engine: str = "scan"
    folded: bool = False
    """`top` was applied where the groups were computed."""
    segments: dict[str, int] | None = None
    """For the columnar engine: segments read, and answered from the per-process cache."""
    tail: dict[str, int] | None = None
    """For the columnar engine: events after the segments, and those read from the store."""
    counts: dict[Key, int] | None = None
    """Bare counts instead of groups (the rollup: a long series makes no object per group)."""


async def get(*, ctx: AppContext, event_filter: EventFilter, query: InsightQuery) -> dict[str, Any]:
    """The aggregate of matching events per group, rendered, with the engine and time taken."""
    started = time.perf_counter()
    tz = buckets.zone(query.tz)
    time_dim = next((d for d in query.by if d.is_time), None)
    if time_dim is not None and event_filter.since_ms is not None:
        _bucket_range(ctx, time_dim, tz, event_filter.since_ms, event_filter.until_ms or now_ms())
    gathered = await _from_rollup(ctx, event_filter, query)
    if gathered is None:
        gathered = await _from_segments(ctx, event_filter, query, tz)
    if gathered is None:
        gathered = await _scan(ctx, event_filter, query, tz)
    counts = gathered.counts
    if counts is not None and query.top is None:
        if not query.by and not counts:
            counts = {(): 0}
        if time_dim is not None:
            counts = _fill_series(ctx, event_filter, query, time_dim, tz, gathered, counts, 0)
        rows = render_counts(query, counts, tz)
    else:
        groups = gathered.groups
        if counts is not None:  # `top` folds groups
            groups = {key: Group(count=n) for key, n in counts.items()}
        if not query.by and not groups:
            groups = {(): Group()}  # without dimensions there is always the one answer
        if time_dim is not None:
            groups = _fill_series(ctx, event_filter, query, time_dim, tz, gathered, groups, EMPTY)
        if query.top is not None and not gathered.folded:
            groups = fold_top(query, groups)
        rows = render(query, groups, tz)
    numeric = query.metric.kind not in ("count", "count_distinct")
    return {
        "metric": query.metric.label,
        "by": [d.label for d in query.by],
        "tz": query.tz,
        "top": query.top,
        "total": gathered.total,
        **({"skipped": sum(g.skipped for g in gathered.groups.values())} if numeric else {}),
        "rows": rows,
        "truncated": gathered.truncated,
        "engine": gathered.engine,
        **({"segments": gathered.segments} if gathered.segments is not None else {}),
        **({"tail": gathered.tail} if gathered.tail is not None else {}),
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
    }


async def _from_rollup(
    ctx: AppContext, event_filter: EventFilter, query: InsightQuery
) -> _Gathered | None:
    """Counts by type, source, hour or day in UTC from the hourly rollup; None when it cannot
    answer exactly (then the store is scanned)."""
    if not (
        query.metric.kind == "count"
        and query.tz == "UTC"
        and not query.comparisons
        and len(query.by) <= 2
        and all(d.kind in ROLLUP_DIMENSIONS for d in query.by)
        and event_filter.profile_id is None
        and event_filter.converted is None
        and not event_filter.properties
        and all(
            b is None or b % HOUR_MS == 0 for b in (event_filter.since_ms, event_filter.until_ms)
        )
    ):
        return None
    count_query = CountQuery(
        group_by=tuple(GroupBy(d.kind) for d in query.by),  # type: ignore[arg-type]
        max_rows=ctx.config.max_insight_groups,
        ordered=False,  # render orders the rows; a truncated count is not used
    )
    try:
        result = await ctx.storage.events.count(event_filter, count_query)
    except QueryTimeout:
        raise query_too_slow(ctx.config.query_timeout_ms) from None
    if not result.from_rollup or result.truncated:
        return None
    counts = dict(zip(result.keys, result.counts, strict=True))
    return _Gathered(groups={}, counts=counts, total=result.total, engine="rollup")


async def _from_segments(
    ctx: AppContext, event_filter: EventFilter, query: InsightQuery, tz: tzinfo
) -> _Gathered | None:
    """Any metric from the Parquet segments and the hot tail after them, in one DuckDB query
    (columnar/query.py); None when segments cannot answer exactly (fields that change after an
    event is stored, such as its profile, paths under `[*]`, a segment without the path as a
    column), and another engine answers."""
    for attempt in (1, 2):
        try:
            return await _segments_once(ctx, event_filter, query, tz)
        except duckdb.OutOfMemoryException:
            raise BadRequest(
                "the query needs more than EVENTSTITCH_COLUMNAR_MEMORY_MB and "
                "EVENTSTITCH_COLUMNAR_SPILL_MB allow; narrow it with filters or since/until",
                errors=[{"field": "metric", "limit": ctx.config.columnar_memory_mb}],
                reason="too_many_values",
            ) from None
        except duckdb.IOException:
            if attempt == 2:
                raise
            # segments put into a larger one meanwhile were deleted: read the listing again
    return None


async def _segments_once(
    ctx: AppContext, event_filter: EventFilter, query: InsightQuery, tz: tzinfo
) -> _Gathered | None:
    boundary = segments.checkpoint(ctx)  # before the listing: no segment read goes past it
    if (
        boundary is None
        or not columnar.served(query, event_filter)
        or (event_filter.since_ms is not None and event_filter.since_ms >= boundary)
    ):
        return None
    until = boundary if event_filter.until_ms is None else min(boundary, event_filter.until_ms)
    files = segments.overlapping(segments.files(ctx), event_filter.since_ms, until)
    needed = await asyncio.to_thread(columnar.columns_needed, files, query, event_filter)
    if needed is None:
        return None
    async with _hot_tail(ctx, event_filter, needed, boundary) as hot:
        first = min(until, hot.earliest)
        time_dim = next((d for d in query.by if d.is_time), None)
        bounds = None
        if time_dim is not None and (
            query.tz != "UTC" or time_dim.kind not in columnar.UTC_WIDTH_MS
        ):
            start = event_filter.since_ms
            if start is None:
                start = min([segments.start_of(f) for f in files] + [first])
            end = event_filter.until_ms or now_ms()
            bounds = [buckets.to_ms(b) for b in _bucket_range(ctx, time_dim, tz, start, end)]
        asked = columnar.Asked(
            files=files,
            tail_rows=hot.rows,
            needed=needed,
            limits=parquet.Limits.of(ctx.config),
            event_filter=event_filter,
            query=query,
            until_ms=until,
            max_groups=ctx.config.max_insight_groups,
            max_values=ctx.config.max_insight_values,
        )
        answered = await asyncio.to_thread(
            columnar.answer,
            asked,
            bounds=bounds,
            cache_rows=ctx.config.columnar_cache_rows,
            cache_bytes=ctx.config.columnar_cache_values_mb * 1_000_000,
        )
    return _Gathered(
        answered.groups,
        answered.total,
        answered.truncated,
        engine="columnar",
        folded=query.top is not None,
        segments={"read": len(files) - answered.cached, "cached": answered.cached},
        tail={"events": hot.events, "read": hot.read},
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _HotTail:
    rows: columnar.TailRows | None
    """None when there are no events after the segments (reading an empty file takes ms)."""
    events: int
    read: int
    """Events read from the store for this answer (the rest were kept, columnar/tail.py)."""
    earliest: int


@contextlib.asynccontextmanager
async def _hot_tail(
    ctx: AppContext, event_filter: EventFilter, needed: columnar.Needed, boundary: int
) -> AsyncIterator[_HotTail]:
    """The events after the segments, for the time of one answer: what this process kept of
    this question's tail plus what was committed since, where the store has a commit order
    and the question runs up to now; else read whole and staged in a file."""
    if event_filter.until_ms is not None and event_filter.until_ms <= boundary:
        yield _HotTail(None, 0, 0, now_ms())
        return
    tail_filter = dataclasses.replace(event_filter, since_ms=boundary)
    if event_filter.until_ms is None and ctx.config.columnar_tail_rows > 0:
        generation = segments.generation(ctx)
        key = (
            ctx.storage,  # the object, not its address: another store may get that later
            generation,
            tuple(needed),
            dataclasses.replace(event_filter, since_ms=None),
        )
        while True:
            kept = tail.entry(key, columnar.tail_columns(needed), segments.folder(ctx))
            async with kept.lock:
                if kept.dropped:
                    continue  # dropped while this question waited: a new one for the key
                try:
                    followed = await _follow(ctx, kept, tail_filter, needed, boundary)
                    if followed is None:
                        tail.forget(key, kept)  # no commit order here: read whole
                    else:
                        hot, staged, keep = followed
                        if segments.generation(ctx) != generation:
                            keep = False  # forgotten meanwhile (an erasure): not kept past this
                        try:
                            yield hot
                        finally:
                            if staged is not None:
                                staged.unlink(missing_ok=True)
                            if not keep:
                                tail.forget(key, kept)
                        return
                finally:
                    tail.release(kept)
            break
    staged = columnar.tail_file(segments.folder(ctx))
    try:
        events, earliest, _ = await _stage_tail(ctx, _tail_lines(ctx, tail_filter, needed), staged)
        rows = columnar.TailRows(staged=staged) if events else None
        yield _HotTail(rows, events, events, earliest)
    finally:
        staged.unlink(missing_ok=True)


class _NotAsValues(Exception):
    """The store cannot read these paths as values (it says so from the paths alone)."""


async def _committed_lines(
    ctx: AppContext, event_filter: EventFilter, needed: columnar.Needed, span: CommitSpan
) -> AsyncIterator[_Lines]:
    """The matching events committed within `span` as staged lines, a page at a time, in
    the store's commit order; raises _NotAsValues when the store cannot read these paths."""
    ids = list(needed)
    paths = [needed[cid][0] for cid in ids]
    in_time = _in_time(ctx)
    resume: CommitPosition | None = None
    while True:
        page = await in_time(
            functools.partial(
                ctx.storage.events.values_committed,
                event_filter,
                paths,
                span=span,
                resume=resume,
                limit=TAIL_PAGE,
            )
        )
        if page is None:
            raise _NotAsValues
        rows, resume = page
        if rows:
            lines = b"".join(columnar.tail_line_of_values(row, ids) for row in rows)
            yield lines, len(rows), min(r[3] for r in rows), max(r[3] for r in rows)
        if resume is None:
            return


async def _follow(
    ctx: AppContext,
    kept: tail.Kept,
    tail_filter: EventFilter,
    needed: columnar.Needed,
    boundary: int,
) -> tuple[_HotTail, Path | None, bool] | None:
    """The kept tail brought up to now: the rows the segments took over deleted, the events
    committed since read in commit order and appended; the tail, the file of lines to read
    beside it (when they do not fit the budget) and whether it stays kept. None when the store
    has no commit order or cannot read these paths as values."""
    events = ctx.storage.events
    limits = parquet.Limits.of(ctx.config)
    in_time = _in_time(ctx)
    tail.begin(kept, boundary)
    span = await in_time(functools.partial(events.commit_span, tail_filter, after=kept.position))
    if span is None:
        return None
    if span[0] is None and kept.position is not None:  # the store went back behind it
        tail.restart(kept)
    staged = columnar.tail_file(segments.folder(ctx))
    handed = False  # the file goes to the caller, which deletes it after the answer
    try:
        try:
            committed = _committed_lines(ctx, tail_filter, needed, span)
            read, earliest, latest = await _stage_tail(ctx, committed, staged, held=kept.rows)
        except _NotAsValues:
            return None
        keep = kept.rows + read <= ctx.config.columnar_tail_rows
        if keep:
            tail.make_room(read, ctx.config.columnar_tail_rows, kept)
            await asyncio.to_thread(tail.append, kept, staged, read, latest, span[1], limits)
        held, found = await asyncio.to_thread(tail.summary, kept, limits)
        total = held + (0 if keep else read)
        if found is not None:
            earliest = min(earliest, found)
        handed = not keep
        rows_at = columnar.TailRows(
            kept=tuple(kept.paths), since_ms=boundary, staged=staged if handed else None
        )
        hot = _HotTail(rows_at if total else None, total, read, earliest)
        return hot, staged if handed else None, keep
    finally:
        if not handed:
            staged.unlink(missing_ok=True)


def _check_tail_size(ctx: AppContext, events: int) -> None:
    """Refuse a question whose tail holds more than EVENTSTITCH_MAX_INSIGHT_VALUES events."""
    if events > ctx.config.max_insight_values:
        raise BadRequest(
            f"the events after the last insight segment are more than "
            f"{ctx.config.max_insight_values}; narrow the query with filters or "
            "since/until, or let the segments catch up",
            errors=[{"field": "metric", "limit": ctx.config.max_insight_values}],
            reason="too_many_values",
        )


_Lines = tuple[bytes, int, int, int]
"""A page of the tail as staged lines: the lines, how many events, the earliest and the latest
receipt time among them."""


async def _stage_tail(
    ctx: AppContext, pages: AsyncIterator[_Lines], target: Path, *, held: int = 0
) -> tuple[int, int, int]:
    """The pages of the tail written to `target` one by one (memory holds one page), refused
    past EVENTSTITCH_MAX_INSIGHT_VALUES events with the `held` ones kept already; how many,
    and the earliest and latest receipt times (now and 0 when none)."""
    staged, earliest, latest = 0, now_ms(), 0
    with target.open("wb") as out:
        async for lines, count, oldest, newest in pages:
            staged += count
            _check_tail_size(ctx, held + staged)
            out.write(lines)
            earliest, latest = min(earliest, oldest), max(latest, newest)
    return staged, earliest, latest


async def _tail_lines(
    ctx: AppContext, event_filter: EventFilter, needed: columnar.Needed
) -> AsyncIterator[_Lines]:
    """The matching events as staged lines, newest first, a page at a time. Where the store
    can take the needed paths out of the payloads itself (`values_page`), only those values
    travel (3-5 times faster with large payloads, docs/benchmarks.md); else whole events are
    read and parsed."""
    ids = list(needed)
    paths = [needed[cid][0] for cid in ids]
    in_time = _in_time(ctx)
    before: str | None = None
    while True:
        rows = await in_time(
            functools.partial(
                ctx.storage.events.values_page,
                event_filter,
                paths,
                limit=TAIL_PAGE,
                before_id=before,
            )
        )
        if rows is None:  # not on this store: whole events
            # (a store decides from the paths alone, so never after a first page of values)
            assert before is None, "values_page refused after giving values"
            async for page in _pages(ctx, event_filter):
                if page:
                    lines = b"".join(columnar.tail_line(e, needed) for e in page)
                    yield lines, len(page), page[-1].received_ms, page[0].received_ms
            return
        if rows:
            lines = b"".join(columnar.tail_line_of_values(row, ids) for row in rows)
            yield lines, len(rows), rows[-1][3], rows[0][3]
        if len(rows) < TAIL_PAGE:
            return
        before = rows[-1][0]


async def _pages(ctx: AppContext, event_filter: EventFilter) -> AsyncIterator[list[EventRecord]]:
    """The matching events, newest first, a page at a time, within the query time limit."""
    in_time = _in_time(ctx)
    before: str | None = None
    while True:
        page = await in_time(
            functools.partial(
                ctx.storage.events.list_page, event_filter, limit=SCAN_PAGE, before_id=before
            )
        )
        yield page
        if len(page) < SCAN_PAGE:
            return
        before = page[-1].id


def _in_time(ctx: AppContext) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
    """A reader of pages that refuses, as too slow, a page asked for after the query's time
    limit (counted from now) or one the store stopped at that limit."""
    deadline = time.monotonic() + ctx.config.query_timeout_ms / 1000

    async def read(page: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() > deadline:
            raise query_too_slow(ctx.config.query_timeout_ms)
        try:
            return await page()
        except QueryTimeout:
            raise query_too_slow(ctx.config.query_timeout_ms) from None

    return read


async def _scan(
    ctx: AppContext, event_filter: EventFilter, query: InsightQuery, tz: tzinfo
) -> _Gathered:
    """Every matching event, newest first in pages, folded into its groups."""
    gathered = _Gathered(groups={})
    held = 0
    async for page in _pages(ctx, event_filter):
        for event in page:
            if all(matches(c, event.properties) for c in query.comparisons):
                held += _add(ctx, gathered, query, event, tz)
                if held > ctx.config.max_insight_values:
                    raise BadRequest(
                        f"metric needs more than {ctx.config.max_insight_values} values held "
                        "at once; narrow the query with filters or since/until",
                        errors=[{"field": "metric", "limit": ctx.config.max_insight_values}],
                        reason="too_many_values",
                    )
    return gathered


def _add(
    ctx: AppContext, gathered: _Gathered, query: InsightQuery, event: EventRecord, tz: tzinfo
) -> int:
    """Count one event in each of its groups; how many values it adds to memory."""
    gathered.total += 1
    metric = query.metric
    found: list[Any] = []
    if metric.kind == "count_distinct":
        if metric.field == "profile_id":
            found = [event.profile_id] if event.profile_id is not None else []
        elif metric.field == "source_id":
            found = [event.source_id]
        else:
            found = [
                _canonical(v) for v in values(event.properties, metric.path or ()) if v is not None
            ]
    elif metric.kind != "count":
        found = list(values(event.properties, metric.path or ()))
    numbers = [v for v in found if is_number(v)] if metric.kind != "count_distinct" else []
    added = 0
    for key in _keys(event, query.by, tz):
        group = gathered.groups.get(key)
        if group is None:
            if len(gathered.groups) >= ctx.config.max_insight_groups:
                gathered.truncated = True
                continue
            group = gathered.groups[key] = Group()
        group.count += 1
        if metric.kind == "count_distinct":
            group.add_distinct(found)
            added += len(found)
        elif metric.kind != "count":
            group.add_numbers(numbers)
            group.skipped += len(found) - len(numbers)
            added += len(numbers)
    return added


def _keys(event: EventRecord, by: tuple[Dimension, ...], tz: tzinfo) -> Iterator[Key]:
    """Each group key an event belongs to: one, or one per distinct value under `[*]`."""
    choices: list[list[Any]] = []
    for dim in by:
        if dim.kind == "type":
            choices.append([event.type])
        elif dim.kind == "source":
            choices.append([event.source_id])
        elif dim.kind == "profile_less":
            choices.append([event.profile_less])
        elif dim.kind == "converted":
            choices.append([event.converted_ms is not None])
        elif dim.is_time:
            choices.append([buckets.to_ms(buckets.floor(event.received_ms, dim.kind, tz))])
        else:
            path = dim.path or ()
            found = list(values(event.properties, path))
            if not has_each(path):
                found = found[:1]
            choices.append(sorted({_canonical(v) for v in found} or {_canonical(None)}))
    yield from _product(choices)


def _product(choices: list[list[Any]]) -> Iterator[Key]:
    if not choices:
        yield ()
        return
    for head in choices[0]:
        for rest in _product(choices[1:]):
            yield (head, *rest)


def _canonical(value: Any) -> bytes:
    """A JSON value as a hashable key: `true` and `1` stay apart, objects compare by content."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _bucket_range(
    ctx: AppContext, dim: Dimension, tz: tzinfo, since_ms: int, until_ms: int
) -> list[datetime]:
    limit = ctx.config.max_insight_buckets
    found = buckets.series(since_ms, until_ms, dim.kind, tz, limit)
    if found is None:
        raise BadRequest(
            f"by {dim.kind} makes more than {limit} intervals; narrow since/until or use a "
            "longer interval",
            errors=[{"field": "by", "limit": limit}],
            reason="too_many_buckets",
        )
    return found


def _fill_series(
    ctx: AppContext,
    event_filter: EventFilter,
    query: InsightQuery,
    time_dim: Dimension,
    tz: tzinfo,
    gathered: _Gathered,
    groups: dict[Key, V],
    empty: V,
) -> dict[Key, V]:
    """The groups with `empty` for every interval of the range without events, for each
    combination of the other dimensions; the range is since/until, else the intervals found."""
    at = query.by.index(time_dim)
    found = set(map(itemgetter(at), groups))
    if event_filter.since_ms is not None:
        start = event_filter.since_ms
        end = event_filter.until_ms or now_ms()
    elif found:
        start, end = min(found), max(found) + 1
    else:
        return groups
    series = [buckets.to_ms(b) for b in _bucket_range(ctx, time_dim, tz, start, end)]
    rest_of: Callable[[Key], Any]  # a key without its time: what else it is grouped by
    if len(query.by) == 1:
        rest_of = lambda key: ()  # noqa: E731
    elif len(query.by) == 2:
        rest_of = itemgetter(1 - at)
    else:
        rest_of = lambda key: key[:at] + key[at + 1 :]  # noqa: E731
    present = Counter(map(rest_of, groups))
    if len(query.by) == 1:
        present[()] += 0  # a lone series is complete even with no events at all
    if len(present) * len(series) > ctx.config.max_insight_groups:
        gathered.truncated = True
        return groups
    complete = found.issubset(series)
    filled = groups
    for rest, holds in present.items():
        if complete and holds == len(series):
            continue  # every interval of this combination has events
        if filled is groups:
            filled = dict(groups)
        parts = (rest,) if len(query.by) == 2 else rest
        before, after = parts[:at], parts[at:]
        for bucket in series:
            key = (*before, bucket, *after)
            if key not in filled:
                filled[key] = empty
    return filled
