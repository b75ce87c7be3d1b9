"""SQL for event filters and counts on SQLite, built from fixed fragments and bound values."""

from __future__ import annotations

from typing import Any

from eventstitch.identity.resolution import SYSTEM_SOURCE_ID
from eventstitch.ids import id_floor
from eventstitch.storage.records import CountQuery, EventFilter, GroupBy, PropertyPath
from eventstitch.storage.shared.query_plan import (
    BUCKET_MS,
    as_number,
    can_use_rollup,
)


def json_path(path: PropertyPath) -> str:
    """A SQLite JSON path with every key quoted, so dots or spaces in a key stay literal."""
    return "$" + "".join('."' + key.replace('"', '""') + '"' for key in path)


def _literal_match(column: str, path: PropertyPath, value: str) -> tuple[str, list[Any]]:
    """Equality of a property with a query-string value: strings exactly, a value written as a
    JSON number with numbers numerically, `true`/`false`/`null` with those JSON literals."""
    jpath = json_path(path)
    clauses = [f"(json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?)"]
    params: list[Any] = [jpath, jpath, value]
    number = as_number(value)
    if number is not None:
        clauses.append(
            f"(json_type({column}, ?) IN ('integer', 'real') AND json_extract({column}, ?) = ?)"
        )
        params += [jpath, jpath, number]
    if value in ("true", "false", "null"):
        clauses.append(f"json_type({column}, ?) = ?")
        params += [jpath, value]
    return "(" + " OR ".join(clauses) + ")", params


def where_clause(
    event_filter: EventFilter, *, before_id: str | None = None
) -> tuple[str, list[Any]]:
    """The WHERE clause over `events` for a filter. Time bounds become id bounds (UUIDv7)."""
    clauses: list[str] = []
    params: list[Any] = []
    if event_filter.types:
        clauses.append(f"type IN ({','.join('?' * len(event_filter.types))})")
        params += event_filter.types
    if event_filter.source_ids:
        clauses.append(f"source_id IN ({','.join('?' * len(event_filter.source_ids))})")
        params += event_filter.source_ids
    if event_filter.profile_less is not None:
        clauses.append("profile_less = ?")
        params.append(int(event_filter.profile_less))
    if event_filter.profile_id is not None:
        clauses.append("profile_id = ?")
        params.append(event_filter.profile_id)
    if event_filter.converted:
        clauses.append("converted_ms IS NOT NULL")
    elif event_filter.converted is not None:
        # Still waiting: collected without a profile and not linked since. Tracked events had
        # a profile all along, and system events never identify anyone: neither waits.
        clauses.append("profile_less = 1 AND converted_ms IS NULL AND source_id <> ?")
        params.append(SYSTEM_SOURCE_ID)
    if event_filter.since_ms is not None:
        clauses.append("id >= ?")
        params.append(id_floor(event_filter.since_ms))
    if event_filter.until_ms is not None:
        clauses.append("id < ?")
        params.append(id_floor(event_filter.until_ms))
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    for path, value in event_filter.properties:
        clause, values = _literal_match("properties", path, value)
        clauses.append(clause)
        params += values
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _dimension_sql(group: GroupBy, *, rollup: bool) -> tuple[str, list[Any]]:
    if group.dimension == "type":
        return "type", []
    if group.dimension == "source":
        return "source_id", []
    if group.dimension == "property":
        return "json_extract(properties, ?)", [json_path(group.path)]
    if group.dimension == "converted_kind":
        return "substr(converted_by, 1, instr(converted_by, ':') - 1)", []
    size = BUCKET_MS[group.dimension]
    column = "hour" if rollup else "received_ms"
    return f"({column} - {column} % {size})", []


def count_sql(event_filter: EventFilter, query: CountQuery) -> tuple[str, list[Any], bool]:
    """SELECT keys..., count, distinct? grouped by the query's dimensions; and whether it reads
    the rollup. One extra row beyond `max_rows` is asked for, to detect truncation."""
    rollup = can_use_rollup(event_filter, query)
    select: list[str] = []
    params: list[Any] = []
    for group in query.group_by:
        sql, values = _dimension_sql(group, rollup=rollup)
        select.append(sql)
        params += values
    keys = [f"k{i}" for i in range(len(select))]
    columns = [f"{sql} AS {key}" for sql, key in zip(select, keys, strict=True)]
    if rollup:
        columns.append("SUM(count) AS n")
        where, where_params = _rollup_where(event_filter)
        table = "event_counts_hourly"
    else:
        columns.append("COUNT(*) AS n")
        if query.distinct is not None:
            columns.append("COUNT(DISTINCT json_extract(properties, ?)) AS d")
            params.append(json_path(query.distinct))
        where, where_params = where_clause(event_filter)
        table = "events"
    sql = f"SELECT {', '.join(columns)} FROM {table}{where}"
    params += where_params
    if keys:
        sql += f" GROUP BY {', '.join(keys)}"
        if rollup:  # erased events leave rollup rows at zero; a group of none is no group
            sql += " HAVING SUM(count) > 0"
        time_keys = [
            k for k, g in zip(keys, query.group_by, strict=True) if g.dimension in BUCKET_MS
        ]
        order = (
            [f"{k} ASC" for k in time_keys]
            + ["n DESC"]
            + [f"{k} ASC" for k in keys if k not in time_keys]
        )
        sql += f" ORDER BY {', '.join(order)} LIMIT ?"
        params.append(query.max_rows + 1)
    return sql, params, rollup


def _rollup_where(event_filter: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if event_filter.types:
        clauses.append(f"type IN ({','.join('?' * len(event_filter.types))})")
        params += event_filter.types
    if event_filter.source_ids:
        clauses.append(f"source_id IN ({','.join('?' * len(event_filter.source_ids))})")
        params += event_filter.source_ids
    if event_filter.profile_less is not None:
        clauses.append("profile_less = ?")
        params.append(int(event_filter.profile_less))
    if event_filter.since_ms is not None:
        clauses.append("hour >= ?")
        params.append(event_filter.since_ms)
    if event_filter.until_ms is not None:
        clauses.append("hour < ?")
        params.append(event_filter.until_ms)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
