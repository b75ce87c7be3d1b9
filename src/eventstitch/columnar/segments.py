"""Insight segments: one immutable Parquet file per sealed hour of events, and counts over them.

`rebuild` writes the hours the store holds that ended at least `SEAL_MS` ago and are past the
checkpoint, oldest first. Each segment is written under a temporary name and renamed into
place, and only then does the checkpoint (the end of the last sealed hour written, a small
file replaced atomically too) move on; a crash leaves at most a temporary file, removed by the
next rebuild, which resumes after the checkpoint. Segments never change once written, so any
number of processes read them while one writes the next.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventstitch.columnar import parquet
from eventstitch.context import AppContext
from eventstitch.ids import now_ms
from eventstitch.storage.records import CountQuery, EventFilter, GroupBy
from eventstitch.transfer.service import iter_events

HOUR_MS = 3_600_000
SEAL_MS = 60_000
"""How long after an hour ends it counts as sealed: writes in flight have committed by then."""
FOLDER = "insight-segments"
CHECKPOINT = "checkpoint"
COUNTABLE = {"type": "type", "source": "source_id"}
"""Dimensions a segment answers, as its columns; time buckets are computed from received_at."""
TIME_MS = {"minute": 60_000, "hour": HOUR_MS, "day": 86_400_000}


def folder(ctx: AppContext) -> Path:
    """Where the segments of this store live: under the data folder."""
    return ctx.config.data_dir / FOLDER


def checkpoint(ctx: AppContext) -> int | None:
    """The end (Unix ms) of the last sealed hour written, or None before the first rebuild."""
    try:
        return int((folder(ctx) / CHECKPOINT).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _write_checkpoint(where: Path, end_ms: int) -> None:
    partial = where / f".{CHECKPOINT}.{os.getpid()}.partial"
    partial.write_text(f"{end_ms}\n")
    os.replace(partial, where / CHECKPOINT)


async def rebuild(
    *,
    ctx: AppContext,
    from_scratch: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write a segment for each sealed hour past the checkpoint; how many were written.
    `progress(done, total)` is told after each hour."""
    where = folder(ctx)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    for leftover in where.glob(".*.partial"):
        leftover.unlink()  # a crash mid-write: the hour is after the checkpoint, redone below
    if from_scratch:
        for segment in where.glob("hour-*.parquet"):
            segment.unlink()
        with contextlib.suppress(FileNotFoundError):
            (where / CHECKPOINT).unlink()
    start = checkpoint(ctx)
    sealed_end = (now_ms() - SEAL_MS) // HOUR_MS * HOUR_MS
    hours = await _hours_with_events(ctx, start, sealed_end)
    written = 0
    for done, hour in enumerate(hours, start=1):
        since = EventFilter(since_ms=hour, until_ms=hour + HOUR_MS)
        await parquet.write(
            events=iter_events(ctx=ctx, event_filter=since),
            target=where / f"hour-{hour}.parquet",
            memory_mb=ctx.config.columnar_memory_mb,
        )
        written += 1
        _write_checkpoint(where, hour + HOUR_MS)
        if progress is not None:
            progress(done, len(hours))
    if start is None or sealed_end > start:
        _write_checkpoint(where, max(sealed_end, start or 0))
    return written


async def _hours_with_events(ctx: AppContext, start: int | None, end: int) -> list[int]:
    """The hours in [start, end) holding events, oldest first (from the hourly rollup)."""
    if start is not None and start >= end:
        return []
    result = await ctx.storage.events.count(
        EventFilter(since_ms=start, until_ms=end),
        CountQuery(group_by=(GroupBy("hour"),), max_rows=1_000_000),
    )
    return sorted(int(row.keys[0]) for row in result.rows if row.count)


def count(
    *, ctx: AppContext, event_filter: EventFilter, by: tuple[str, ...], until_ms: int
) -> tuple[dict[tuple[Any, ...], int], int]:
    """Counts per group of the segment events matching the filter before `until_ms`, and the
    total; every value bound as a parameter."""
    files = sorted(str(p) for p in folder(ctx).glob("hour-*.parquet"))
    if not files:
        return {}, 0
    where = ["received_at < make_timestamptz(? * 1000)"]
    params: list[Any] = [files, until_ms]
    if event_filter.since_ms is not None:
        where.append("received_at >= make_timestamptz(? * 1000)")
        params.append(event_filter.since_ms)
    for column, values in (("type", event_filter.types), ("source_id", event_filter.source_ids)):
        if values:
            where.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params += list(values)
    keys = [
        COUNTABLE[d] if d in COUNTABLE else f"epoch_ms(received_at) // {TIME_MS[d]} * {TIME_MS[d]}"
        for d in by
    ]
    select = ", ".join([*keys, "count(*)"])
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    con = parquet.connect(ctx.config.columnar_memory_mb)
    try:
        rows = con.execute(
            f"SELECT {select} FROM read_parquet(?) WHERE {' AND '.join(where)}{group}", params
        ).fetchall()
    finally:
        con.close()
    groups = {tuple(row[:-1]): int(row[-1]) for row in rows if row[-1]}
    return groups, sum(groups.values())
