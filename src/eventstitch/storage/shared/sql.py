"""SQL both backends run alike, built over their `Dialect`: the event filter, the rollup filter,
the grouped count, the checkpoint statements. Fixed fragments only; every value is bound."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eventstitch.identity.resolution import SYSTEM_SOURCE_ID
from eventstitch.ids import id_floor
from eventstitch.paths import has_each
from eventstitch.storage.records import (
    CountQuery,
    CountResult,
    EventFilter,
    GroupBy,
    PropertyPath,
)
from eventstitch.storage.shared.dialect import Dialect, Fragment
from eventstitch.storage.shared.query_plan import BUCKET_MS, can_use_rollup


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _common(d: Dialect, event_filter: EventFilter, clauses: list[str], params: list[Any]) -> None:
    """The filters the events table and the rollup share: types, sources, profile-less."""
    for column, values in (("type", event_filter.types), ("source_id", event_filter.source_ids)):
        if values:
            sql, bound = d.in_list(column, values)
            clauses.append(sql)
            params += bound
    if event_filter.profile_less is not None:
        clauses.append(f"profile_less = {d.mark}")
        params.append(d.flag(event_filter.profile_less))


def where_clause(
    d: Dialect, event_filter: EventFilter, *, before_id: str | None = None
) -> Fragment:
    """The WHERE clause over `events` for a filter. Time bounds become id bounds (UUIDv7)."""
    clauses: list[str] = []
    params: list[Any] = []
    _common(d, event_filter, clauses, params)
    if event_filter.profile_id is not None:
        clauses.append(f"profile_id = {d.mark}")
        params.append(d.text(event_filter.profile_id))
    if event_filter.converted:
        clauses.append("converted_ms IS NOT NULL")
    elif event_filter.converted is not None:
        # Still waiting: collected without a profile and not linked since. Tracked events had
        # a profile all along, and system events never identify anyone: neither waits.
        clauses.append(
            f"profile_less = {d.true} AND converted_ms IS NULL AND source_id <> {d.mark}"
        )
        params.append(SYSTEM_SOURCE_ID)
    bounds = (
        (">=", None if event_filter.since_ms is None else id_floor(event_filter.since_ms)),
        ("<", None if event_filter.until_ms is None else id_floor(event_filter.until_ms)),
        ("<", None if before_id is None else d.text(before_id)),
    )
    for op, limit in bounds:
        if limit is not None:
            clauses.append(f"id {op} {d.mark}")
            params.append(limit)
    for path, value in event_filter.properties:
        clause, values = d.property_match(path, value)
        clauses.append(clause)
        params += values
    return _where(clauses), params


def rollup_where(d: Dialect, event_filter: EventFilter) -> Fragment:
    """The WHERE clause over the hourly rollup (only for filters `can_use_rollup` accepts)."""
    clauses: list[str] = []
    params: list[Any] = []
    _common(d, event_filter, clauses, params)
    for op, limit in ((">=", event_filter.since_ms), ("<", event_filter.until_ms)):
        if limit is not None:
            clauses.append(f"hour {op} {d.mark}")
            params.append(limit)
    return _where(clauses), params


def _dimension(d: Dialect, group: GroupBy, *, rollup: bool) -> Fragment:
    if group.dimension == "type":
        return "type" if rollup else "events.type", []
    if group.dimension == "source":
        return "source_id" if rollup else "events.source_id", []
    if group.dimension == "property":
        return d.property_value(group.path)
    if group.dimension == "converted_kind":
        return d.converted_kind, []
    size = BUCKET_MS[group.dimension]
    if rollup and group.dimension == "hour":
        # The rollup's rows are hours already: grouped by the key itself, in its own order,
        # SQLite walks the primary key instead of sorting every row into a temporary tree.
        return "hour", []
    column = "hour" if rollup else "received_ms"
    return f"({column} - {column} {d.percent} {size})", []


@dataclass(frozen=True, slots=True)
class GroupedCount:
    """`SELECT keys..., n, d? ... GROUP BY` without its order: each backend orders its own way."""

    sql: str
    params: list[Any]
    keys: list[str]
    from_rollup: bool


def grouped_count(d: Dialect, event_filter: EventFilter, query: CountQuery) -> GroupedCount:
    """Keys k0.., the count `n` and the distinct count `d` when asked, read from the rollup
    when it answers exactly; a group of none (erased events leave zeros) is no group.

    A path with `[*]` joins each event to the distinct values its elements hold, so the event
    counts once in each of their groups (`n` counts events, not rows)."""
    rollup = can_use_rollup(event_filter, query)
    columns: list[str] = []
    params: list[Any] = []
    joins: list[str] = []
    join_params: list[Any] = []

    def expand(path: PropertyPath, alias: str) -> str:
        sql, values = d.property_values(path, alias)
        joins.append(sql)
        join_params.extend(values)
        return f"{alias}.value"

    for i, group in enumerate(query.group_by):
        if group.dimension == "property" and has_each(group.path):
            columns.append(f"{expand(group.path, f'g{i}')} AS k{i}")
            continue
        sql, values = _dimension(d, group, rollup=rollup)
        columns.append(f"{sql} AS k{i}")
        params += values
    keys = [f"k{i}" for i in range(len(columns))]
    if rollup:
        columns.append("SUM(count) AS n")
        where, where_params = rollup_where(d, event_filter)
        table = "event_counts_hourly"
    else:
        distinct: str | None = None
        distinct_params: list[Any] = []
        if query.distinct is not None and has_each(query.distinct):
            distinct = expand(query.distinct, "dv")
        elif query.distinct is not None:
            distinct, distinct_params = d.property_value(query.distinct)
        columns.append("COUNT(DISTINCT events.id) AS n" if joins else "COUNT(*) AS n")
        if distinct is not None:
            columns.append(f"COUNT(DISTINCT {distinct}) AS d")
            params += distinct_params
        where, where_params = where_clause(d, event_filter)
        table = "events"
        if joins:
            # The filter runs inside, where its columns name the events' own and none of a join's.
            table = f"(SELECT * FROM events{where}) AS events{''.join(joins)}"
            where_params, where = where_params + join_params, ""
    sql = f"SELECT {', '.join(columns)} FROM {table}{where}"
    params += where_params
    if keys:
        sql += f" GROUP BY {', '.join(keys)}"
        if rollup:
            sql += " HAVING SUM(count) > 0"
    return GroupedCount(sql, params, keys, rollup)


def total_of_groups(result: CountResult, query: CountQuery) -> int | None:
    """The number of events as the sum of the groups' counts, where each event is in one group
    and none was left out; None when it must be counted apart (a path under `[*]` puts an
    event in several groups)."""
    if result.truncated or any(
        g.dimension == "property" and has_each(g.path) for g in query.group_by
    ):
        return None
    return sum(result.counts)


def count_order(
    keys: Sequence[str], query: CountQuery, order_key: Callable[[str, GroupBy], list[str]]
) -> str:
    """Time buckets first (oldest first), then the largest count, then the other keys."""
    pairs = list(zip(keys, query.group_by, strict=True))
    times = [f"{k} ASC" for k, g in pairs if g.dimension in BUCKET_MS]
    others = [e for k, g in pairs if g.dimension not in BUCKET_MS for e in order_key(k, g)]
    return ", ".join([*times, "n DESC", *others])


def count_result(
    rows: Iterable[Sequence[Any]],
    query: CountQuery,
    *,
    from_rollup: bool,
    key: Callable[[GroupBy, Any], Any] | None = None,
) -> CountResult:
    """The rows of a grouped count (one more than `max_rows` asked for) as the answer, its total
    still to be set; `key` turns a backend's value into the key part (none: the value is the
    key)."""
    width = len(query.group_by)
    result = CountResult(from_rollup=from_rollup)
    rows = list(rows)
    if width == 0 and rows and rows[0][0] is None:
        rows = []  # SUM over no rollup rows
    if len(rows) > query.max_rows:
        rows = rows[: query.max_rows]
        result.truncated = True
    if key is None:
        result.keys = [tuple(row[:width]) for row in rows]
    else:
        group_by = query.group_by
        result.keys = [
            tuple(key(g, v) for g, v in zip(group_by, row[:width], strict=True)) for row in rows
        ]
    result.counts = [int(row[width]) for row in rows]
    if query.distinct is not None:
        result.distincts = [int(row[width + 1]) for row in rows]
    return result


def checkpoint_sql(d: Dialect) -> tuple[str, str]:
    """Clearing a named checkpoint, and setting it (name, value, updated_ms)."""
    return (
        f"DELETE FROM checkpoints WHERE name = {d.mark}",
        f"INSERT INTO checkpoints (name, value, updated_ms) VALUES ({d.mark}, {d.mark}, {d.mark})"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
        " updated_ms = excluded.updated_ms",
    )
