"""Insights from the Parquet segments: one DuckDB query over the segments of sealed hours and
the hot tail (events after them, read from the store and staged the same way), so every
aggregate (percentiles and distinct counts included) is computed once over all the events.

Paths are read from their typed columns (columnar/shred.py); a query any segment cannot answer
exactly gets None, and the caller asks another engine. Every value is a bound parameter; the
only names in the SQL are ours (fixed columns, and t_/i_/f_ with a hash of the path).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson

from eventstitch import paths
from eventstitch.columnar import parquet, partials, tail, value_parts
from eventstitch.columnar.behind import BEHIND
from eventstitch.columnar.manifests import read_manifest
from eventstitch.columnar.segments import end_of, start_of
from eventstitch.columnar.shred import (
    MISSING,
    canonical,
    column_id,
    key_of,
    typed_columns,
)
from eventstitch.query.insight_params import PERCENTILES, Comparison, InsightQuery, json_number
from eventstitch.query.insight_rows import OTHER, Group, Key, metric_value, sort_value
from eventstitch.storage.records import EventFilter, EventRecord, PropertyPath, ValuesRow

UTC_WIDTH_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
SERVED_DIMENSIONS = ("type", "source", "property", "minute", "hour", "day", "week", "month")


@dataclass(slots=True)
class _Sql:
    """A statement under construction: its text parts and their bound values, in order."""

    params: list[Any] = field(default_factory=list)

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def binds(self, values: Sequence[Any]) -> str:
        return ", ".join(self.bind(v) for v in values)


def served(query: InsightQuery, event_filter: EventFilter) -> bool:
    """Whether the question is one segments may answer: fields that change after an event is
    stored (its profile, its conversion) are not in segments."""
    return (
        all(d.kind in SERVED_DIMENSIONS for d in query.by)
        and query.metric.field != "profile_id"
        and event_filter.profile_less is None
        and event_filter.profile_id is None
        and event_filter.converted is None
    )


def paths_of(query: InsightQuery, event_filter: EventFilter) -> list[PropertyPath]:
    found = [d.path for d in query.by if d.path is not None]
    found += [c.path for c in query.comparisons]
    found += [path for path, _ in event_filter.properties]
    if query.metric.path is not None:
        found.append(query.metric.path)
    return found


Needed = dict[str, tuple[PropertyPath, str]]
"""The columns a query reads: column id → the path, and the typed columns segments hold."""


def columns_needed(
    files: list[Path], query: InsightQuery, event_filter: EventFilter
) -> Needed | None:
    """The columns the query reads, or None when some segment cannot answer a path exactly
    (then another engine answers)."""
    manifests = [read_manifest(f) for f in files]
    if any(m is None for m in manifests):
        return None
    needed: Needed = {}
    for path in paths_of(query, event_filter):
        key = key_of(path)
        if key is None:
            return None
        kinds = ""
        for manifest in manifests:
            assert manifest is not None
            reads = manifest.reads(path)
            if reads is None:
                return None
            if reads:
                kinds += manifest.columns[key]
        needed[column_id(key)] = (path, kinds)
    return needed


def tail_file(staging: Path) -> Path:
    """A new private file for one query's hot tail, in the segments folder."""
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=staging, prefix=".tail.", suffix=".jsonl")
    os.close(handle)
    return Path(name)


def tail_line(event: EventRecord, needed: Needed) -> bytes:
    """One hot-tail event as a line shaped like a segment's row, each needed path read the way
    the scan reads it (paths.values)."""
    values = (
        (cid, next(paths.values(event.properties, path), MISSING))
        for cid, (path, _) in needed.items()
    )
    return _staged_line(event.type, event.source_id, event.received_ms, values)


def tail_line_of_values(row: ValuesRow, ids: Sequence[str]) -> bytes:
    """`tail_line` of an event read as the JSON text at each needed path (`ids` in the order
    of the paths read, see `EventStore.values_page`): the same line, without the whole
    payload parsed."""
    _, event_type, source_id, received_ms, texts = row
    values = (
        (cid, MISSING if text is None else orjson.loads(text))
        for cid, text in zip(ids, texts, strict=True)
    )
    return _staged_line(event_type, source_id, received_ms, values)


def _staged_line(
    event_type: str, source_id: str, received_ms: int, values: Iterable[tuple[str, Any]]
) -> bytes:
    """The line of one hot-tail event: its type, source and time, and the typed columns of
    each needed path's value (column id and value, MISSING where there is none)."""
    line: dict[str, Any] = {"type": event_type, "source_id": source_id, "ms": received_ms}
    for cid, value in values:
        line |= typed_columns(cid, value)
    return orjson.dumps(line) + b"\n"


def tail_columns(needed: Needed) -> dict[str, str]:
    """The columns of a staged tail line, with their DuckDB types."""
    typed = {f"{kind}_{cid}": sql_type for cid in needed for kind, sql_type in _TYPED}
    return {"ms": "BIGINT", "type": "VARCHAR", "source_id": "VARCHAR", **typed}


@dataclass(frozen=True, slots=True)
class TailRows:
    """Where an answer reads the hot tail: files of it kept by this process (their rows
    received from `since_ms` on, columnar/tail.py), and lines staged in a file, either or
    both."""

    kept: tuple[Path, ...] = ()
    since_ms: int = 0
    staged: Path | None = None


@dataclass(frozen=True, slots=True)
class Asked:
    """A question for the segments: the segments before `until_ms` and the hot tail, the
    paths read, DuckDB's limits, and at most `max_groups` groups in the answer."""

    files: list[Path]
    tail_rows: TailRows | None
    needed: Needed
    limits: parquet.Limits
    event_filter: EventFilter
    query: InsightQuery
    until_ms: int
    max_groups: int
    max_values: int = 0
    """Most numbers or distinct values one answer may bring into this process (0: none)."""


def answer(
    asked: Asked,
    *,
    bounds: list[int] | None,
    cache_rows: int = 0,
    cache_bytes: int = 0,
) -> Answered:
    """The groups, the number of events and whether groups were cut at `max_groups`.
    `bounds` are the starts of the time buckets when the time dimension is not a plain UTC
    width. A metric that merges reads the segments the range covers whole from the
    per-process cache where it can (columnar/partials.py), keeping at most `cache_rows`
    groups there; a percentile or a distinct count reads them from the cache of values
    (columnar/value_parts.py), keeping at most `cache_bytes` there."""
    query = asked.query
    answered = None
    later: list[tuple[Hashable, Callable[[], None]]] = []
    if bounds is None and query.top is None:
        if cache_rows > 0 and query.metric.kind in partials.MERGEABLE:
            answered = _answer_in_parts(asked, cache_rows)
        elif cache_bytes > 0 and query.metric.kind in value_parts.PER_VALUE:
            answered = _answer_in_value_parts(asked, cache_bytes, later)
    if answered is not None:
        return answered
    answered = _answer_at_once(asked, bounds)
    for key, job in later:  # after the statement, not beside it: they would share the cores
        BEHIND.offer(key, job)
    return answered


def _answer_at_once(asked: Asked, bounds: list[int] | None) -> Answered:
    """The answer from one statement over the segments and the tail, none of it kept."""
    query = asked.query
    files, tail_rows, needed = asked.files, asked.tail_rows, asked.needed
    event_filter, until_ms, max_groups = asked.event_filter, asked.until_ms, asked.max_groups
    rows = _Sql()
    rows_text = _rows(rows, files, tail_rows, needed, event_filter, until_ms)
    where = _Sql()
    where_text = _conditions(where, query, event_filter)
    filtered = f" WHERE {where_text}" if where_text else ""
    cursor = parquet.connect(asked.limits)
    try:
        kept = None
        if query.top is not None:
            kept = _top_values(cursor, rows_text, filtered, rows.params + where.params, query)
        keyed = _Sql()
        keys = _keys(keyed, query, bounds, kept)
        joined = "ev"
        if bounds is not None:
            joined = "ev ASOF JOIN (SELECT unnest(?::BIGINT[]) AS bucket) AS b ON ev.ms >= b.bucket"
            keyed.params.append(bounds)
        select = ", ".join([*keys, "count(*)", *_aggregates(query)])
        group = " GROUP BY ALL" if keys else ""
        text = (
            f"WITH ev AS ({rows_text}) SELECT {select} FROM {joined}{filtered}{group} "
            f"LIMIT {int(max_groups) + 1}"
        )
        found = cursor.execute(text, rows.params + keyed.params + where.params).fetchall()
        total = 0
        if len(found) > max_groups:  # the groups left out hold events too: count them all
            joined_params = [bounds] if bounds is not None else []
            counted = f"WITH ev AS ({rows_text}) SELECT count(*) FROM {joined}{filtered}"
            row = cursor.execute(counted, rows.params + joined_params + where.params).fetchone()
            total = int(row[0]) if row is not None else 0
    finally:
        cursor.close()
    groups: dict[Key, Group] = {}
    for record in found[:max_groups]:
        key = tuple(_key_part(query, at, part) for at, part in enumerate(record[: len(keys)]))
        groups[key] = _group(query, record[len(keys)], record[len(keys) + 1 :])
    if len(found) <= max_groups:
        total = sum(group.count for group in groups.values())
    return Answered(groups, total, len(found) > max_groups)


@dataclass(frozen=True, slots=True)
class Answered:
    groups: dict[Key, Group]
    total: int
    truncated: bool
    cached: int = 0
    """Segments whose groups came from the per-process cache."""


def _answer_in_parts(asked: Asked, cache_rows: int) -> Answered | None:
    """The answer merged from each segment's groups: cached ones as they are, the rest (the
    segments not cached, those the range cuts, the hot tail) from one statement grouped by
    segment too, whose whole segments are then cached. None when a part has more groups
    than `max_groups` (then one statement answers, as without the cache)."""
    shape = _shape(asked)
    if shape is None:
        return None
    query = asked.query
    kind, width = query.metric.kind, len(query.by)
    merged: dict[tuple[Any, ...], list[Any]] = {}
    cached, to_read, to_keep = _cached_and_unread(asked, partials.lookup, shape)
    for found in cached:
        partials.merge(kind, width, found, merged)
    if to_read or asked.tail_rows is not None:
        text, params, limit = _parts_statement(asked, to_read, _aggregates(query))
        cursor = parquet.connect(asked.limits)
        try:
            found_rows = cursor.execute(text, params).fetchall()
        finally:
            cursor.close()
        per_part = _per_part(found_rows, asked.query, asked.max_groups)
        if len(found_rows) >= limit or per_part is None:
            partials.mark_overflowing(shape)  # asked again, it goes straight to one statement
            return None
        for part_rows in per_part.values():
            partials.merge(kind, width, part_rows, merged)
        for at, known in to_keep.items():
            partials.store(known, shape, tuple(per_part.get(at, ())), cache_rows)
    return _merged_answer(asked, merged, len(cached), lambda acc: partials.values(kind, acc))


FILL_BEHIND_BYTES = 8_000_000
"""Segment bytes to read whole past which a percentile or distinct count is answered by one
statement, and its segments are read into the cache behind the answer (columnar/behind.py)."""


def _answer_in_value_parts(
    asked: Asked, cache_bytes: int, later: list[tuple[Hashable, Callable[[], None]]]
) -> Answered | None:
    """A percentile or a distinct count merged from each segment's numbers or distinct values
    (columnar/value_parts.py), as `_answer_in_parts` merges groups. None when a part has more
    groups than `max_groups`, or more values than the cache could keep, and when the segments
    still to keep pass FILL_BEHIND_BYTES: then one statement answers, and reading them into the
    cache is added to `later`, to be done behind the answer."""
    shape = _shape(asked)
    if shape is None:
        return None
    query = asked.query
    kind, width = query.metric.kind, len(query.by)
    generation = value_parts.generation()
    keyed = (generation, shape)  # kept ids are only read against their own texts' table
    merged: dict[tuple[Any, ...], list[Any]] = {}
    cached, to_read, to_keep = _cached_and_unread(asked, value_parts.CACHE.lookup, keyed)
    if sum(known[3] for known in to_keep.values()) > FILL_BEHIND_BYTES:
        whole = [to_read[at] for at in to_keep]
        segments_only = replace(asked, tail_rows=None)  # the tail's files are the answer's own
        knowns = list(to_keep.values())
        job = (  # keyed by the folder too: two stores in one process ask apart
            (whole[0].parent, keyed),
            lambda: _keep_value_parts(segments_only, whole, knowns, cache_bytes),
        )
        later.append(job)
        return None
    for found in cached:
        value_parts.merge(kind, width, found, merged)
    if to_read or asked.tail_rows is not None:
        try:
            per_part = _value_parts(asked, shape, to_read, generation, cache_bytes)
        except value_parts.Stale:
            return None  # the texts' table started afresh meanwhile: one statement, this time
        if per_part is None:
            return None
        for part_rows in per_part.values():
            value_parts.merge(kind, width, part_rows, merged)
        _store_value_parts(per_part, to_keep, keyed, cache_bytes)
    flags = value_parts.Flags()
    if kind in PERCENTILES:
        _percentiles(merged, PERCENTILES[kind], asked)
    return _merged_answer(
        asked, merged, len(cached), lambda acc: value_parts.values(kind, acc, flags)
    )


def _value_parts(
    asked: Asked, shape: tuple[Any, ...], to_read: list[Path], generation: int, cache_bytes: int
) -> dict[int | None, list[tuple[Any, ...]]] | None:
    """The numbers or distinct values of each group of each segment to read and of the hot
    tail, by their place in `to_read` (None: the tail); None, with the question (`shape`) marked
    as overflowing, when a part has more than `max_groups` groups or they hold more values than
    one answer may bring over or the cache may keep; value_parts.Stale when the texts' table
    started afresh since `generation`."""
    text, params, limit = _parts_statement(asked, to_read, _value_aggregates(asked.query))
    # The lists come to this process only when they hold at most `max_values` values in all
    # (EVENTSTITCH_MAX_INSIGHT_VALUES), else none do and one statement answers.
    text = (
        "SELECT * EXCLUDE (vals), CASE WHEN sum(len(vals)) OVER () <= ? THEN vals END AS vals,"
        f" sum(len(vals)) OVER () AS size FROM ({text}) AS found"
    )
    params = [asked.max_values, *params]  # its mark comes first in the text
    cursor = parquet.connect(asked.limits)
    try:
        columns = cursor.execute(text, params).fetchnumpy()
    finally:
        cursor.close()
    found_rows = _value_rows(columns, asked.query.metric.kind, generation, cache_bytes)
    per_part = None if found_rows is None else _per_part(found_rows, asked.query, asked.max_groups)
    if found_rows is None or per_part is None or len(found_rows) >= limit:
        partials.mark_overflowing(shape)
        return None
    return per_part


def _store_value_parts(
    per_part: dict[int | None, list[tuple[Any, ...]]],
    to_keep: dict[int, Any],
    keyed: tuple[int, Any],
    cache_bytes: int,
) -> None:
    for at, known in to_keep.items():
        if value_parts.generation() != keyed[0]:
            break  # ids of a table started afresh meanwhile: never read again
        value_parts.store(known, keyed, tuple(per_part.get(at, ())), cache_bytes)


def _keep_value_parts(asked: Asked, whole: list[Path], knowns: list[Any], cache_bytes: int) -> None:
    """Read segments whole into the cache of values, behind an answer (columnar/behind.py):
    their identities as the answer found them, so that a segment changed since is not kept
    under its old one."""
    shape = _shape(asked)
    if shape is None:
        return
    generation = value_parts.generation()
    try:
        per_part = _value_parts(asked, shape, whole, generation, cache_bytes)
    except value_parts.Stale:
        return
    if per_part is None:
        return
    keyed = (generation, shape)
    _store_value_parts(per_part, dict(enumerate(knowns)), keyed, cache_bytes)
    if value_parts.generation() == generation and any(
        value_parts.CACHE.lookup(known, keyed) is None for known in knowns
    ):
        # The cache cannot hold them all: asked again, this would be one statement and this
        # work again, every time. One statement answers it from now on, as a question too
        # large to keep.
        partials.mark_overflowing(shape)


INTERPOLATED_AT_ONCE = 200
"""Groups whose percentile one statement interpolates."""


def _percentiles(merged: dict[tuple[Any, ...], list[Any]], fraction: float, asked: Asked) -> None:
    """Each group's percentile appended to its merged numbers (the first `max_groups`, those
    an answer shows): the two ranked numbers found by numpy, their interpolation by DuckDB's
    own `quantile_cont` over the pair, so the number is the one a statement over all the
    values gives (its build may round `lo * (1 - d) + hi * d` once, as a fused multiply-add,
    and gives `lo` itself at a whole rank)."""
    accs = list(itertools.islice(merged.values(), asked.max_groups))
    pairs = [value_parts.ranked_pair(acc[4], fraction) for acc in accs]
    between = [pair for pair in pairs if pair is not None and pair[2] > 0]
    found: list[float] = []
    if between:
        cursor = parquet.connect(asked.limits)
        try:
            for at in range(0, len(between), INTERPOLATED_AT_ONCE):
                chunk = between[at : at + INTERPOLATED_AT_ONCE]
                # The fraction must be a constant for DuckDB: our own number, as text it reads
                # back exactly.
                select = ", ".join(
                    f"list_aggregate(?::DOUBLE[], 'quantile_cont', '{d!r}'::DOUBLE)"
                    for _, _, d in chunk
                )
                row = cursor.execute(f"SELECT {select}", [[lo, hi] for lo, hi, _ in chunk])
                found += [float(v) for v in row.fetchone() or ()]
        finally:
            cursor.close()
    interpolated = iter(found)
    for acc, pair in zip(accs, pairs, strict=True):
        if pair is None:
            acc.append(None)
        else:
            acc.append(next(interpolated) if pair[2] > 0 else pair[0])


def _shape(asked: Asked) -> tuple[Any, ...] | None:
    """The question less its time range: what a segment read whole gives it is kept under it;
    None for a question marked as overflowing (one statement answers it)."""
    shape = (asked.query, replace(asked.event_filter, since_ms=None, until_ms=None))
    return None if partials.overflows(shape) else shape


def _cached_and_unread(
    asked: Asked, lookup: Callable[[Any, Any], Any], shape: Any
) -> tuple[list[Any], list[Path], dict[int, Any]]:
    """What a cache holds of the segments the range covers whole, the segments to read (the
    rest), and which of those to keep once read (their place in that list, and their
    identity)."""
    cached: list[Any] = []
    to_read: list[Path] = []
    to_keep: dict[int, Any] = {}
    since = asked.event_filter.since_ms
    for segment in asked.files:
        # Read in full: inside the range, and none past `until_ms`, where reading stops.
        whole = (since is None or start_of(segment) >= since) and end_of(segment) <= asked.until_ms
        known = partials.identity(segment) if whole else None
        found = lookup(known, shape) if known is not None else None
        if found is not None:
            cached.append(found)
            continue
        if known is not None:
            to_keep[len(to_read)] = known
        to_read.append(segment)
    return cached, to_read, to_keep


def _parts_statement(
    asked: Asked, to_read: list[Path], aggregates: list[str]
) -> tuple[str, list[Any], int]:
    """The statement grouping the segments to read and the hot tail by segment (`part`, NULL
    for the tail) and by the question's keys, its parameters, and its limit of rows."""
    needed = asked.needed
    if len(to_read) < len(asked.files):
        # The typed columns of the segments read only: a kept one may hold a column (i_, f_)
        # that none of these has, and DuckDB binds no column that no file read holds.
        needed = columns_needed(to_read, asked.query, asked.event_filter) or needed
    rows = _Sql()
    rows_text = _rows(
        rows, to_read, asked.tail_rows, needed, asked.event_filter, asked.until_ms, part=True
    )
    where = _Sql()
    where_text = _conditions(where, asked.query, asked.event_filter)
    filtered = f" WHERE {where_text}" if where_text else ""
    keyed = _keys(_Sql(), asked.query, None, None, raw=True)
    keys = [f"{key} AS k{at}" for at, key in enumerate(keyed)]
    select = ", ".join(["part", *keys, "count(*) AS n", *aggregates])
    # A group keyed by a property's null may come as two rows, missing and null (`_per_part`).
    rows_per_group = 2 ** sum(dim.kind == "property" for dim in asked.query.by)
    limit = (asked.max_groups + 1) * rows_per_group * (len(to_read) + 1)
    text = (
        f"WITH ev AS ({rows_text}) SELECT {select} FROM ev{filtered} GROUP BY ALL "
        f"LIMIT {int(limit)}"
    )
    return text, rows.params + where.params, limit


def _per_part(
    found_rows: Sequence[Sequence[Any]], query: InsightQuery, max_groups: int
) -> dict[int | None, list[tuple[Any, ...]]] | None:
    """The rows of a statement grouped by segment, without their `part`, a property's missing
    value (NULL: `_parts_statement` groups by the column itself) as JSON null, so that a part
    may hold two rows of the `null` key, which merging adds up; None when a part has more than
    `max_groups` groups."""
    properties = [at + 1 for at, dim in enumerate(query.by) if dim.kind == "property"]
    per_part: dict[int | None, list[tuple[Any, ...]]] = {}
    for record in found_rows:
        row = list(record)
        for at in properties:
            if row[at] is None:
                row[at] = "null"
        per_part.setdefault(row[0], []).append(tuple(row[1:]))
    width = len(query.by)
    for rows in per_part.values():
        if len(rows) > max_groups and len({row[:width] for row in rows}) > max_groups:
            return None
    return per_part


def _value_rows(
    columns: dict[str, Any], kind: str, generation: int, cache_bytes: int
) -> list[tuple[Any, ...]] | None:
    """The rows of a value statement as Python values and numpy arrays (texts as ids); None
    when they were more than one answer may bring over, or more texts than the cache keeps;
    value_parts.Stale when the texts' table started afresh since `generation`."""
    names = list(columns)
    lists = columns["vals"].tolist()
    if any(listed is None for listed in lists):
        return None  # more than fits: DuckDB sent none
    plain = [columns[name].tolist() for name in names[:-2]]  # `part`, keys and counts
    rows: list[tuple[Any, ...]] = []
    for at, listed in enumerate(lists):
        if kind == "count_distinct":
            found = value_parts.intern(listed.tolist(), generation, cache_bytes)
            if found is None:
                return None
        else:
            found = np.asarray(listed, dtype=np.float64)
        rows.append((*(column[at] for column in plain), found))
    return rows


def _merged_answer(
    asked: Asked,
    merged: dict[tuple[Any, ...], list[Any]],
    cached: int,
    aggregates: Callable[[list[Any]], tuple[Any, ...]],
) -> Answered:
    """The answer from merged groups: at most `max_groups` of them, every event counted."""
    query = asked.query
    groups: dict[Key, Group] = {}
    total = 0
    for raw_key, acc in merged.items():
        total += acc[0]
        if len(groups) == asked.max_groups:
            continue
        key = tuple(_key_part(query, at, part) for at, part in enumerate(raw_key))
        groups[key] = _group(query, acc[0], aggregates(acc))
    return Answered(groups, total, len(merged) > asked.max_groups, cached)


def _rows(
    sql: _Sql,
    files: list[Path],
    tail_rows: TailRows | None,
    needed: dict[str, tuple[PropertyPath, str]],
    event_filter: EventFilter,
    until_ms: int,
    *,
    part: bool = False,
) -> str:
    """The events in range as rows of (ms, type, source_id, and each needed path's columns);
    with `part`, also the place in `files` of the segment each comes from (NULL for the hot
    tail)."""
    typed = {f"{kind}_{cid}": sql_type for cid in needed for kind, sql_type in _TYPED}
    parts: list[str] = []
    if files:
        columns = ["received_ms AS ms", "type", "source_id"]
        if part:
            columns.append("file_index AS part")  # its place in the list (a name costs 15 %)
        for cid, (_, kinds) in needed.items():
            for kind, sql_type in _TYPED:
                name = f"{kind}_{cid}"
                columns.append(name if kind in kinds else f"CAST(NULL AS {sql_type}) AS {name}")
        source = f"read_parquet({sql.bind([str(f) for f in files])}, union_by_name = true)"
        where = [f"received_ms < {sql.bind(until_ms)}"]
        if event_filter.since_ms is not None:
            where.append(f"received_ms >= {sql.bind(event_filter.since_ms)}")
        if event_filter.types:
            where.append(f"type IN ({sql.binds(event_filter.types)})")
        if event_filter.source_ids:
            where.append(f"source_id IN ({sql.binds(event_filter.source_ids)})")
        parts.append(f"SELECT {', '.join(columns)} FROM {source} WHERE {' AND '.join(where)}")
    if tail_rows is not None:
        types = tail_columns(needed)
        listed = ", ".join(types) + (", CAST(NULL AS UBIGINT) AS part" if part else "")
        if tail_rows.kept:
            kept = sql.bind([str(f) for f in tail_rows.kept])
            since = sql.bind(tail_rows.since_ms)
            parts.append(f"SELECT {listed} FROM read_parquet({kept}) WHERE ms >= {since}")
        if tail_rows.staged is not None:
            sql.bind(str(tail_rows.staged))
            parts.append(f"SELECT {listed} FROM {tail.staged_lines(types)}")
    if not parts:  # no segment and no tail: no rows, with every column a question reads
        nulls = "".join(f", CAST(NULL AS {t}) AS {name}" for name, t in typed.items())
        named = ", CAST(NULL AS UBIGINT) AS part" if part else ""
        return (
            f"SELECT CAST(NULL AS BIGINT) AS ms, '' AS type, '' AS source_id{nulls}{named} LIMIT 0"
        )
    return " UNION ALL BY NAME ".join(parts)


_TYPED = (("t", "VARCHAR"), ("i", "BIGINT"), ("f", "DOUBLE"))
"""The typed columns of a path (columnar/shred.py), each with its DuckDB type."""


def _number(cid: str) -> str:
    return f"coalesce(CAST(i_{cid} AS DOUBLE), f_{cid})"


def _cid(path: PropertyPath | None) -> str:
    key = key_of(path or ())
    assert key is not None
    return column_id(key)


def _conditions(sql: _Sql, query: InsightQuery, event_filter: EventFilter) -> str:
    """Property comparisons and equalities, as the scan applies them (insight_params.matches)."""
    terms: list[str] = []
    equalities = [
        Comparison(path, "in", values=(value,)) for path, value in event_filter.properties
    ]
    for comparison in (*query.comparisons, *equalities):
        cid = _cid(comparison.path)
        if comparison.op == "exists":
            terms.append(f"t_{cid} IS {'NOT ' if comparison.exists else ''}NULL")
        elif comparison.op in ("gt", "lt"):
            sign = ">" if comparison.op == "gt" else "<"
            terms.append(f"{_number(cid)} {sign} {sql.bind(comparison.number)}")
        else:
            texts = [canonical(v) for v in comparison.values]
            texts += [v for v in comparison.values if v in ("true", "false", "null")]
            numbers = [n for n in map(json_number, comparison.values) if n is not None]
            either = [f"t_{cid} IN ({sql.binds(texts)})"]
            if numbers:
                either.append(f"{_number(cid)} IN ({sql.binds(numbers)})")
            terms.append("(" + " OR ".join(either) + ")")
    return " AND ".join(terms)


def _dimension(query: InsightQuery, at: int, bounds: list[int] | None, *, raw: bool = False) -> str:
    dim = query.by[at]
    if dim.kind == "type":
        return "type"
    if dim.kind == "source":
        return "source_id"
    if dim.kind == "property":
        column = f"t_{_cid(dim.path)}"
        # A missing value groups with JSON null, as the scan groups them. Grouped by the column
        # itself DuckDB keeps its dictionary: 10 million events by a property in 69 ms rather
        # than 119 (docs/benchmarks.md).
        return column if raw else f"coalesce({column}, 'null')"
    if bounds is not None:
        return "b.bucket"
    width = UTC_WIDTH_MS[dim.kind]
    return f"ms // {width} * {width}"


def _keys(
    sql: _Sql,
    query: InsightQuery,
    bounds: list[int] | None,
    kept: list[Any] | None,
    *,
    raw: bool = False,
) -> list[str]:
    """The group key of each dimension; with `top`, values outside it become NULL (`other`).
    `raw` leaves a property's missing values NULL, for a caller that merges them into `null`
    (`_per_part`)."""
    keys = [_dimension(query, at, bounds, raw=raw) for at in range(len(query.by))]
    if kept is not None:
        at = _top_at(query)
        keys[at] = f"CASE WHEN {keys[at]} IN ({sql.binds(kept or [None])}) THEN {keys[at]} END"
    return keys


def _top_at(query: InsightQuery) -> int:
    return next(i for i, d in enumerate(query.by) if not d.is_time)


def _top_values(
    cursor: duckdb.DuckDBPyConnection,
    rows: str,
    filtered: str,
    params: list[Any],
    query: InsightQuery,
) -> list[Any]:
    """The `top` values of the first dimension that is not time, ranked by the metric over all
    their events, ties by value (as insight_rows.fold_top ranks them)."""
    at = _top_at(query)
    key = _dimension(query, at, None)
    aggregates = ", ".join(["count(*)", *_aggregates(query)])
    text = f"WITH ev AS ({rows}) SELECT {key}, {aggregates} FROM ev{filtered} GROUP BY ALL"
    ranked = []
    for record in cursor.execute(text, params).fetchall():
        group = _group(query, record[1], record[2:])
        value = metric_value(query, group)
        part = _key_part(query, at, record[0])
        ranked.append(
            ((1, 0.0) if value is None else (0, -float(value)), sort_value(part), record[0])
        )
    ranked.sort(key=lambda item: (item[0], item[1]))
    assert query.top is not None
    return [raw for _, _, raw in ranked[: query.top]]


def _value_aggregates(query: InsightQuery) -> list[str]:
    """What each group gives a percentile (the values present, integers and floats, and the
    numbers) or a distinct count (its distinct values), the list last, named `vals`."""
    metric = query.metric
    if metric.kind == "count_distinct":
        if metric.field == "source_id":
            return ["list(DISTINCT source_id) AS vals"]
        cid = _cid(metric.path)
        texts = f"list(DISTINCT t_{cid}) FILTER (WHERE t_{cid} <> 'null')"
        return [f"coalesce({texts}, []::VARCHAR[]) AS vals"]
    cid = _cid(metric.path)
    number = _number(cid)
    counted = [f"count(t_{cid}) AS present", f"count(i_{cid}) AS ints", f"count(f_{cid}) AS floats"]
    numbers = f"list({number}) FILTER (WHERE {number} IS NOT NULL)"
    return [*counted, f"coalesce({numbers}, []::DOUBLE[]) AS vals"]


def _aggregates(query: InsightQuery) -> list[str]:
    metric = query.metric
    if metric.kind == "count":
        return []
    if metric.kind == "count_distinct":
        if metric.field == "source_id":
            return ["count(DISTINCT source_id)"]
        cid = _cid(metric.path)
        return [f"count(DISTINCT t_{cid}) FILTER (WHERE t_{cid} <> 'null')"]
    cid = _cid(metric.path)
    counted = [f"count(t_{cid})", f"count(i_{cid})", f"count(f_{cid})"]
    if metric.kind in ("sum", "avg"):
        return [*counted, f"sum(i_{cid})", f"fsum(f_{cid})"]
    if metric.kind in ("min", "max"):
        return [*counted, f"{metric.kind}(i_{cid})", f"{metric.kind}(f_{cid})"]
    return [*counted, f"quantile_cont({_number(cid)}, {PERCENTILES[metric.kind]!r})"]


def _group(query: InsightQuery, count: int, values: Sequence[Any]) -> Group:
    """A group with its metric computed by DuckDB; the sums and extremes of integers and of
    floats are kept apart so integers stay exact, as in the scan."""
    group = Group(count=int(count))
    kind = query.metric.kind
    if kind == "count":
        return group
    if kind == "count_distinct":
        return Group(count=int(count), fixed=True, value=int(values[0]))
    present, ints, floats = (int(v) for v in values[:3])
    group.skipped = present - ints - floats
    group.fixed = True
    numbers = ints + floats
    if not numbers:
        return group
    if kind in ("sum", "avg"):
        int_sum, float_sum = values[3], values[4]
        total: int | float = int(int_sum or 0) if not floats else float(int_sum or 0) + float_sum
        group.value = total if kind == "sum" else total / numbers
    elif kind in ("min", "max"):
        found = [v for v in (values[3], values[4]) if v is not None]
        group.value = min(found) if kind == "min" else max(found)
    else:
        group.value = float(values[3])
    return group


def _key_part(query: InsightQuery, at: int, part: Any) -> Any:
    """A DuckDB value as the group key the scan makes: JSON text as bytes, buckets as ms."""
    dim = query.by[at]
    if part is None and not dim.is_time:
        return OTHER
    if dim.kind == "property":
        return part.encode()
    if dim.is_time:
        return int(part)
    return part
