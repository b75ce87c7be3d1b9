"""Insight segments: immutable Parquet files of sealed events, written from the store.

`rebuild` first checks the last `RECHECK_MS` before the checkpoint against the store: an hour
segment missing an event committed late is written again, and each part or gap between parts
missing one is read again into a part of its own. It then writes the hours the store holds that
ended at least `SEAL_MS` ago and are past the checkpoint, oldest first, then one part for the
sealed seconds of the open hour, puts the parts of each whole minute, then of each whole ten
minutes, into one (`PART_MERGES`), and puts each whole sealed day into one day file, no merge
past `MERGE_MAX_ROWS`. Each segment is written under a temporary name and renamed into place
with its manifest, and only then does the checkpoint (the end of what is written, a small file
replaced atomically too) move on; a crash leaves a temporary file, a part past the checkpoint
or an hour segment ahead of it, which the next rebuild removes or finishes before it resumes
after the checkpoint. Readers never read past the checkpoint, and leave out a segment a larger
one covers (hour over parts, day over hours, a part over the parts put into it), so nothing is
counted twice; the covered ones are deleted `COVERED_GRACE_S` later. Segment files are not
changed in place (a part read again covers the part it replaces, or is renamed over one of the
same span, as an hour written again is, whose readers keep the old file open; caches know a
file by its inode), so any number of processes read them while one writes the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from eventstitch.columnar import manifests, parquet, tail
from eventstitch.columnar.lock import writer_lock
from eventstitch.columnar.shred import Collector, Manifest, merged
from eventstitch.context import AppContext
from eventstitch.files import open_private
from eventstitch.ids import now_ms
from eventstitch.storage.records import CountQuery, EventFilter, GroupBy
from eventstitch.transfer.service import iter_events

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SEAL_MS = 10_000
"""How long after a span ends it counts as sealed: writes in flight have committed by then (a
commit waits for the writer's queue, at most EVENTSTITCH_QUEUE_SIZE events: about 1 s at
10 000 a second). A later commit is caught by `RECHECK_MS`, or when its hour is sealed."""
PART_MS = 10_000
"""The open hour is written in parts of whole sealed 10-second spans, so the hot tail read
from the store is short (about `SEAL_MS` plus `PART_MS` plus the time between rounds: 20-30 s
of events with the default 10 s). Measured at a sustained 10 000 events a second
(docs/benchmarks.md): a round wrote 10 s of events in 4-5 s, where one of 60 s took 46-54 s
(the cost of an event read from the store grows with the span a round reads)."""
RECHECK_MS = 120_000
"""Each round counts the store's events over this long before the checkpoint (back to the last
day segment at most) and compares them with the rows of the hour segments and parts there: an
hour segment that holds fewer (an event committed later than `SEAL_MS`) is written again, and
each part or gap between parts that holds fewer is read again into a part of its own. One
counting query a round when nothing is missing; a commit later still is caught when its hour
is sealed (`_write_hour`)."""
COVERED_GRACE_S = 30.0
"""A segment that a larger one covers (parts put into a part, an hour or a day; hours into a
day) is deleted once the larger one is this old, not at once: a reader listing the folder
while one file is renamed in and others deleted could otherwise see neither."""
MERGE_LOOKBACK_MS = 2 * HOUR_MS
"""Parts are put together in the windows that end this close to the checkpoint; older ones
were judged by earlier rounds (at a high rate the parts of every older hour stand, and
judging them all each round would grow with the days kept)."""
PART_MERGES = (60_000, 600_000)
"""The parts of each whole minute, then of each whole ten minutes, are put together into one:
a question over the open hour opens at most about 20 parts, not 360 (each file opened costs
its footer's read, about 0.2 ms measured with DuckDB's footer cache)."""
MERGE_MAX_ROWS = 1_000_000
"""Segments are put together (parts into a larger part, an hour's parts into the hour, a day's
hours into the day) only into a file of at most this many rows; past it the smaller files
stay. Each file opened then stands for enough rows that opening it costs little beside
reading them, and no merge holds up a round for long: at 10 000 events a second an hour is
36 million events, whose merge would take the refresher minutes, while the hot tail grows."""
FOLDER = "insight-segments"
CHECKPOINT = "checkpoint"
GENERATION = "generation"


def folder(ctx: AppContext) -> Path:
    """Where the segments of this store live: under the data folder."""
    return ctx.config.data_dir / FOLDER


def files(ctx: AppContext) -> list[Path]:
    """The segments to read, oldest first: each sealed day's compacted file, the hours of days
    not compacted yet, the parts of the open hour (a segment a larger one covers is being
    deleted, and is left out)."""
    where = folder(ctx)
    days = {start_of(f) for f in where.glob("day-*.parquet")}
    hours = [f for f in where.glob("hour-*.parquet") if _floor(f, DAY_MS) not in days]
    parts = _standing_parts(where, days, {start_of(f) for f in hours})
    listed = [*(where / f"day-{d}.parquet" for d in days), *hours, *parts]
    return sorted(listed, key=start_of)


def _standing_parts(
    where: Path, days: set[int] | None = None, hours: set[int] | None = None
) -> list[Path]:
    """The parts no day, hour (by their starts; those in the folder when not given) or other
    part covers, oldest first."""
    if days is None or hours is None:
        days, hours = _segment_starts(where)
    return [
        f
        for f in _uncovered(where.glob("part-*.parquet"))
        if _floor(f, DAY_MS) not in days and _floor(f, HOUR_MS) not in hours
    ]


def _segment_starts(where: Path) -> tuple[set[int], set[int]]:
    """The starts of the day segments and of the hour segments in the folder."""
    days = {start_of(f) for f in where.glob("day-*.parquet")}
    return days, {start_of(f) for f in where.glob("hour-*.parquet")}


def start_of(segment: Path) -> int:
    """The start (Unix ms) of the span a segment holds, from its name."""
    return int(segment.name.removesuffix(".parquet").split("-")[1])


def _end_of(part: Path) -> int:
    return int(part.name.removesuffix(".parquet").split("-")[2])


def end_of(segment: Path) -> int:
    """The end (Unix ms, excluded) of the span a segment holds, from its name."""
    kind = segment.name.split("-")[0]
    if kind == "part":
        return _end_of(segment)
    return start_of(segment) + (DAY_MS if kind == "day" else HOUR_MS)


def _uncovered(parts: Iterable[Path]) -> list[Path]:
    """The parts no other part covers, oldest first: the parts put into a larger one are
    deleted after it is written, and are left out meanwhile."""
    kept: list[Path] = []
    reach = -1
    for part in sorted(parts, key=lambda f: (start_of(f), -_end_of(f))):
        if _end_of(part) > reach:
            kept.append(part)
            reach = _end_of(part)
    return kept


def overlapping(listed: list[Path], since_ms: int | None, until_ms: int | None) -> list[Path]:
    """The segments whose span meets [since, until): a query over a week opens a week's files
    (measured 63 → 41 ms for 7 days of 30 at 10 million events)."""
    return [
        f
        for f in listed
        if (since_ms is None or end_of(f) > since_ms)
        and (until_ms is None or start_of(f) < until_ms)
    ]


def _hour_of(ms: int) -> int:
    return ms // HOUR_MS * HOUR_MS


def _floor(segment: Path, width: int) -> int:
    return start_of(segment) // width * width


def checkpoint(ctx: AppContext) -> int | None:
    """The end (Unix ms) of what the segments hold, for queries; None before the first
    rebuild, and when the read side is off (EVENTSTITCH_COLUMNAR_REFRESH_SECONDS=0)."""
    if ctx.config.columnar_refresh_seconds == 0:
        return None
    return _read_checkpoint(folder(ctx))


async def pending(ctx: AppContext) -> bool:
    """Whether a refresher round has anything to write: no checkpoint yet, or an event received
    at or after it. An idle server then starts a round only once a minute
    (refresher.IDLE_ROUND_SECONDS; each is a child process of about 0.4 s of CPU, 5 % of a
    core every 10 s), which checks for late commits and seals what is left to seal."""
    boundary = checkpoint(ctx)
    if boundary is None:
        return True
    newest = await ctx.storage.events.list_page(
        EventFilter(since_ms=boundary), limit=1, before_id=None
    )
    return bool(newest)


def _read_checkpoint(where: Path) -> int | None:
    try:
        return int((where / CHECKPOINT).read_text().strip())
    except (OSError, ValueError):  # missing or unreadable: no segments, the store answers
        return None


def invalidate(ctx: AppContext) -> None:
    """Forget every segment, after events were erased (segments hold copies of their
    properties: an erased person must not linger there) or imported into the past: the
    checkpoint goes first, so readers stop reading segments at once and ask the store; the
    next rebuild writes them all again. The tails processes keep (columnar/tail.py) are
    forgotten at once, before waiting for a rebuild in progress (the folder's writer lock),
    so call it off the event loop."""
    where = folder(ctx)
    if not where.is_dir():
        return  # nothing written, nothing to forget (and no folder made for the lock)
    _forget_kept_tails(where)
    with writer_lock(where, wait=True):
        _forget_segments(where)


def generation(ctx: AppContext) -> str:
    """A token that changes each time the segments are forgotten (`invalidate`, a rebuild
    from scratch): what a process kept of the hot tail (columnar/tail.py) is kept for one
    generation only, since forgetting follows erased or imported events."""
    try:
        return (folder(ctx) / GENERATION).read_text().strip()
    except OSError:  # never forgotten
        return ""


def _forget_kept_tails(where: Path) -> None:
    """A new generation first (no process keeps a tail read before it), then every process's
    kept tail files (they hold copies of properties); a process finding the generation moved
    after writing one deletes it itself."""
    partial = where / f".{GENERATION}.{os.getpid()}.partial"
    partial.write_text(f"{uuid.uuid4().hex}\n")
    os.replace(partial, where / GENERATION)
    for kept in where.glob(f"{tail.PREFIX}.*"):
        with contextlib.suppress(FileNotFoundError):
            kept.unlink()


def _forget(where: Path) -> None:
    _forget_kept_tails(where)
    _forget_segments(where)


def _forget_segments(where: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (where / CHECKPOINT).unlink()
    for pattern in ("hour-*", "day-*", "part-*"):
        for segment in where.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                segment.unlink()


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
    """Check the last parts against the store, write a segment for each sealed hour past the
    checkpoint, then one part for the sealed seconds of the open hour, put parts and whole days
    together, and delete what larger segments have covered for `COVERED_GRACE_S`; how many
    segments were written. `progress(done, total)` is told after each hour."""
    where = folder(ctx)
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    for pattern in (".*.partial", ".*.ready", ".*.staging.jsonl"):
        for leftover in where.glob(pattern):
            leftover.unlink()  # a crash mid-write: the span is after the checkpoint, redone
    for stale in where.glob(".tail.*.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            if stale.stat().st_mtime < time.time() - 3600:  # a query's, killed before its end
                stale.unlink()
    tail.delete_orphans(where)
    if from_scratch:
        _forget(where)  # the checkpoint first, so readers ask the store meanwhile
    start = _read_checkpoint(where)
    if (
        start is not None
        and start % HOUR_MS
        and (where / f"hour-{_hour_of(start)}.parquet").exists()
    ):
        start = _hour_of(start) + HOUR_MS  # a crash after the hour was written, before this
        _write_checkpoint(where, start)
    for part in where.glob("part-*.parquet"):
        if _end_of(part) > (start or 0):  # written, not checkpointed: redone below
            _delete(part)
    if start is not None:
        await _recheck(ctx, where, start)
    sealed = (now_ms() - SEAL_MS) // PART_MS * PART_MS
    sealed_hours = sealed // HOUR_MS * HOUR_MS
    first = None if start is None else start // HOUR_MS * HOUR_MS
    hours = await _hours_with_events(ctx, first, sealed_hours)
    written = 0
    for done, hour in enumerate(hours, start=1):
        written += await _write_hour(ctx, where, hour, _read_checkpoint(where))
        _write_checkpoint(where, hour + HOUR_MS)  # readers take the hour, or its parts, now
        if progress is not None:
            progress(done, len(hours))
    if start is None or sealed_hours > start:
        _write_checkpoint(where, max(sealed_hours, start or 0))
    begin = _read_checkpoint(where) or sealed_hours
    if sealed > begin:
        written += await _write(ctx, where / f"part-{begin}-{sealed}.parquet", begin, sealed)
        _write_checkpoint(where, sealed)
    await asyncio.to_thread(
        _put_together,
        where,
        _read_checkpoint(where) or 0,
        None if start is None else start - DAY_MS,
        parquet.Limits.of(ctx.config),
        ctx.config.columnar_max_paths,
    )
    _delete_covered(where, time.time() - COVERED_GRACE_S)
    return written


async def _write_hour(ctx: AppContext, where: Path, hour: int, checkpoint: int | None) -> int:
    """The segment of a sealed hour; 1 when written, 0 when it had no events.

    When the checkpoint is inside the hour, the hour's parts hold its events up to the
    checkpoint (a span with no part had none), so the hour is those parts put together with a
    last part for the rest of the hour: each event is read from the store and shredded once,
    instead of once in its part and again in its hour (half the refresher's work at a steady
    rate). The hour is read whole from the store instead when the parts cannot stand for it:
    the store holds more events before the checkpoint than they do (one committed later than
    `SEAL_MS`, after its part was written), or a part kept only some of its paths, or together
    they hold more than `EVENTSTITCH_COLUMNAR_MAX_PATHS` paths (a merge unites every part's
    columns: wider than one hour's segment, and past the memory cap). Parts holding more than
    `MERGE_MAX_ROWS` events together stay, and stand for the hour; when they miss an event,
    only the spans short of the store are read again (`_repair_parts`)."""
    target = where / f"hour-{hour}.parquet"
    end = hour + HOUR_MS
    if checkpoint is None or not hour < checkpoint < end:
        return await _write(ctx, target, hour, end)
    limits = parquet.Limits.of(ctx.config)
    max_paths = ctx.config.columnar_max_paths
    parts = _parts_of(where, hour)
    held = await asyncio.to_thread(parquet.row_count, parts, limits)
    if await _stored(ctx, hour, checkpoint) != held:  # one committed after its part was written
        if held <= MERGE_MAX_ROWS:
            return await _write(ctx, target, hour, end)
        await _repair_parts(ctx, where, hour, checkpoint, parts)  # not 36 million events again
        parts = _parts_of(where, hour)
        held = await asyncio.to_thread(parquet.row_count, parts, limits)
    rest = where / f"part-{checkpoint}-{end}.parquet"
    written = await _write(ctx, rest, checkpoint, end)  # past the checkpoint: left out
    if written:
        parts.append(rest)
        held += await asyncio.to_thread(parquet.row_count, [rest], limits)
    if held > MERGE_MAX_ROWS:
        return written  # the parts stand for the hour
    manifest = _mergeable(parts, max_paths)
    if manifest is None:
        return await _write(ctx, target, hour, end)
    ready = where / f".{target.name}.ready"
    await asyncio.to_thread(parquet.merge, parts, ready, limits, manifest)
    _publish(ready, target, manifest)
    return 1


def _mergeable(parts: list[Path], max_paths: int) -> Manifest | None:
    """The manifest of `parts` put together, when they can stand for one segment: each kept
    every path it met, and together they hold at most `max_paths` paths; else None."""
    found = [manifests.read_manifest(part) for part in parts]
    complete = [m for m in found if m is not None and m.complete and m.shapes]
    if not parts or len(complete) < len(parts):
        return None
    together = merged(complete)
    return together if len(together.columns) <= max_paths else None


def _parts_of(where: Path, hour: int) -> list[Path]:
    """The parts of an hour, oldest first."""
    return [f for f in _standing_parts(where) if _floor(f, HOUR_MS) == hour]


async def _recheck(ctx: AppContext, where: Path, checkpoint: int) -> None:
    """Put right the segments of the last `RECHECK_MS` before the checkpoint that miss an event
    committed later than `SEAL_MS`. An hour segment that ends in that span (days wait for it
    to pass, `_compact_days`) is counted from its start or the span's, and written again whole
    from the store when the store holds more; the parts after it are checked by
    `_repair_parts`."""
    days, hours = _segment_starts(where)
    low = max([checkpoint - RECHECK_MS, *(d + DAY_MS for d in days if d + DAY_MS <= checkpoint)])
    limits = parquet.Limits.of(ctx.config)
    for hour in sorted(h for h in hours if low < h + HOUR_MS <= checkpoint):
        target = where / f"hour-{hour}.parquet"
        since = max(low, hour)
        held = await asyncio.to_thread(parquet.rows_since, target, since, limits)
        if await _stored(ctx, since, hour + HOUR_MS) != held:
            log.warning(
                "insight segments: an event committed later than %d s after its receipt is in "
                "the hour from %d; writing it again",
                SEAL_MS // 1000,
                hour,
            )
            await _write(ctx, target, hour, hour + HOUR_MS)
    low = max([low, *(h + HOUR_MS for h in hours if h + HOUR_MS <= checkpoint)])
    await _repair_parts(ctx, where, low, checkpoint, _standing_parts(where, days, hours))


async def _repair_parts(
    ctx: AppContext, where: Path, low: int, until: int, standing: list[Path]
) -> None:
    """Read again each span of [low, until) short of the store: the parts ending in it (from
    the start of one across `low`) and the gaps between them, where the store then held
    nothing. The store is counted once over them all, and span by span only when that differs
    from the parts' rows. Each span short of the store is read again into a part of its own
    (one per hour), which covers the part it replaces (that one goes with `_delete_covered`):
    readers see the old part or the new, never neither, and the checkpoint does not move."""
    recent = [f for f in standing if low < _end_of(f) <= until]
    since = min([low, *(start_of(f) for f in recent)])
    if since >= until:
        return
    limits = parquet.Limits.of(ctx.config)
    rows = {start_of(f): await asyncio.to_thread(parquet.row_count, [f], limits) for f in recent}
    if await _stored(ctx, since, until) == sum(rows.values()):
        return
    edges = sorted({since, until, *rows, *(_end_of(f) for f in recent)})
    for begin, end in itertools.pairwise(edges):
        if await _stored(ctx, begin, end) != rows.get(begin, 0):
            log.warning(
                "insight segments: an event committed later than %d s after its receipt is "
                "in the span from %d to %d; reading it again",
                SEAL_MS // 1000,
                begin,
                end,
            )
            await _rewrite(ctx, where, begin, end)


async def _rewrite(ctx: AppContext, where: Path, since_ms: int, until_ms: int) -> None:
    """The events of [since, until) read again from the store as parts, one per hour."""
    while since_ms < until_ms:
        end = min(until_ms, since_ms // HOUR_MS * HOUR_MS + HOUR_MS)
        target = where / f"part-{since_ms}-{end}.parquet"
        if not await _write(ctx, target, since_ms, end):
            _delete_within(where, since_ms, end)  # none left there: nothing to cover them
        since_ms = end


def _delete_within(where: Path, since_ms: int, until_ms: int) -> None:
    for part in where.glob("part-*.parquet"):
        if since_ms <= start_of(part) and _end_of(part) <= until_ms:
            _delete(part)


async def _stored(ctx: AppContext, since_ms: int, until_ms: int) -> int:
    """How many events the store holds received in [since, until)."""
    found = await ctx.storage.events.count(
        EventFilter(since_ms=since_ms, until_ms=until_ms), CountQuery(group_by=())
    )
    return found.total


async def _write(ctx: AppContext, target: Path, since_ms: int, until_ms: int) -> int:
    """The events of [since, until) as the segment `target`, with its manifest; 1 when written,
    0 when there were none (no file)."""
    ready = target.with_name(f".{target.name}.ready")
    shredder = Collector(max_paths=ctx.config.columnar_max_paths)
    count = await parquet.write(
        events=iter_events(ctx=ctx, event_filter=EventFilter(since_ms=since_ms, until_ms=until_ms)),
        target=ready,
        limits=parquet.Limits.of(ctx.config),
        shredder=shredder,
    )
    if count == 0:
        ready.unlink()
        return 0
    _publish(ready, target, shredder.manifest())
    return 1


def _delete(segment: Path) -> None:
    for leftover in (segment, manifests.manifest_path(segment)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _publish(ready: Path, target: Path, manifest: Manifest) -> None:
    """The manifest first, then the segment under its name: a reader never sees a segment
    without its manifest."""
    named = manifests.manifest_path(target)
    partial = named.with_name(f".{named.name}.partial")
    with open_private(partial) as out:
        out.write(manifest.to_json())
    os.replace(partial, named)
    os.replace(ready, target)


def _put_together(
    where: Path, end: int, days_after: int | None, limits: parquet.Limits, max_paths: int
) -> None:
    """The parts, then the whole days, before the checkpoint `end` put into larger segments;
    days are judged only when they end after `days_after` (the round's first checkpoint less a
    day; None: every day, a first build)."""
    _merge_parts(where, end, limits, max_paths)
    _compact_days(where, end, days_after, limits, max_paths)


def _merge_parts(where: Path, end: int, limits: parquet.Limits, max_paths: int) -> None:
    """Put the parts of each whole minute before `end` into one, then those of each whole ten
    minutes (`PART_MERGES`), in the windows of the last `MERGE_LOOKBACK_MS`; the parts put in
    are covered, and go with `_delete_covered`. Parts that cannot stand for one segment
    together (`_mergeable`), or hold more than `MERGE_MAX_ROWS` events together, stay as they
    are, as do parts across a window's edge (a round that came late)."""
    for width in PART_MERGES:
        windows: dict[int, list[Path]] = {}
        for part in _standing_parts(where):
            window = start_of(part) // width * width
            if (
                _end_of(part) <= min(window + width, end)
                and _end_of(part) > end - MERGE_LOOKBACK_MS
            ):
                windows.setdefault(window, []).append(part)
        for window, parts in windows.items():
            if window + width > end or len(parts) < 2:
                continue  # the window is not whole yet, or already one part
            manifest = _mergeable(parts, max_paths)
            if manifest is None or parquet.row_count(parts, limits) > MERGE_MAX_ROWS:
                continue
            target = where / f"part-{start_of(parts[0])}-{_end_of(parts[-1])}.parquet"
            ready = where / f".{target.name}.ready"
            parquet.merge(parts, ready, limits, manifest)
            _publish(ready, target, manifest)


def _compact_days(
    where: Path, sealed_end: int, days_after: int | None, limits: parquet.Limits, max_paths: int
) -> None:
    """Put the hours of each whole day before `sealed_end` into one day segment (its hours go
    with `_delete_covered`): a query over 30 days opens 30 files, not 720 (measured 2-7x
    faster). The day holds the columns of the paths its merged manifest keeps; hours that would
    keep more than `max_paths` together stay hours (a day of every hour's columns united, with
    keys that drift from hour to hour, is wider than DuckDB's memory cap lets it write). A day
    of more than `MERGE_MAX_ROWS` events (about 12 a second), or with hours its parts stand
    for, stays hours and parts. A day is put together once `RECHECK_MS` has passed its end
    (`_recheck` checks its last hour first), and only days ending after `days_after` are
    judged: the others were judged by earlier rounds."""
    by_day: dict[int, list[Path]] = {}
    for hour in where.glob("hour-*.parquet"):
        by_day.setdefault(start_of(hour) // DAY_MS * DAY_MS, []).append(hour)
    parted = {_floor(part, DAY_MS) for part in _standing_parts(where)}
    for day, hours in sorted(by_day.items()):
        target = where / f"day-{day}.parquet"
        if target.exists() or day + DAY_MS + RECHECK_MS > sealed_end or day in parted:
            continue  # written, not past its recheck, or parts stand for some of its hours
        if days_after is not None and day + DAY_MS <= days_after:
            continue
        found = [manifests.read_manifest(h) for h in hours]
        if any(m is None for m in found):
            continue  # an hour from before manifests: left as it is
        manifest = merged([m for m in found if m is not None])
        if len(manifest.columns) > max_paths or parquet.row_count(hours, limits) > MERGE_MAX_ROWS:
            continue
        ready = where / f".{target.name}.ready"
        parquet.merge(sorted(hours), ready, limits, manifest)
        _publish(ready, target, manifest)


def _delete_covered(where: Path, before: float) -> None:
    """Delete the hours and parts a day, hour or other part covers, where that one was written
    before `before` (Unix seconds): a crash between writing a larger segment and this leaves
    them for the next round."""
    days = {start_of(f): f for f in where.glob("day-*.parquet")}
    hours = {start_of(f): f for f in where.glob("hour-*.parquet")}
    parts = list(where.glob("part-*.parquet"))
    standing = _uncovered(parts)
    covers: dict[Path, Path] = {}
    for hour in hours.values():
        if _floor(hour, DAY_MS) in days:
            covers[hour] = days[_floor(hour, DAY_MS)]
    for part in parts:
        cover = days.get(_floor(part, DAY_MS)) or hours.get(_floor(part, HOUR_MS))
        if cover is None and part not in standing:
            cover = next(
                f for f in standing if start_of(f) <= start_of(part) and _end_of(part) <= _end_of(f)
            )
        if cover is not None:
            covers[part] = cover
    for covered, cover in covers.items():
        with contextlib.suppress(FileNotFoundError):
            if cover.stat().st_mtime < before:
                _delete(covered)


async def _hours_with_events(ctx: AppContext, start: int | None, end: int) -> list[int]:
    """The hours in [start, end) holding events, oldest first (from the hourly rollup)."""
    if start is not None and start >= end:
        return []
    result = await ctx.storage.events.count(
        EventFilter(since_ms=start, until_ms=end),
        CountQuery(group_by=(GroupBy("hour"),), max_rows=1_000_000),
    )
    return sorted(int(row.keys[0]) for row in result.rows if row.count)
