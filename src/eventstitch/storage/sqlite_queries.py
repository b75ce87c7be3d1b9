"""SQL for event filters and counts on SQLite, built from fixed fragments and bound values."""

from __future__ import annotations

import re
from typing import Any

from eventstitch.ids import id_floor
from eventstitch.storage.interfaces import CountQuery, EventFilter, GroupBy, PropertyPath

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MINUTE_MS = 60_000

_BUCKET_MS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
_ROLLUP_DIMENSIONS = {"type", "source", "hour", "day"}


def json_path(path: PropertyPath) -> str:
    """A SQLite JSON path with every key quoted, so dots or spaces in a key stay literal."""
    return "$" + "".join('."' + key.replace('"', '""') + '"' for key in path)


def _literal_match(column: str, path: PropertyPath, value: str) -> tuple[str, list[Any]]:
    """Equality of a property with a query-string value: strings exactly, a value written as a
    JSON number with numbers numerically, `true`/`false`/`null` with those JSON literals."""
    jpath = json_path(path)
    clauses = [f"(json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?)"]
    params: list[Any] = [jpath, jpath, value]
    number = _as_number(value)
    if number is not None:
        clauses.append(
            f"(json_type({column}, ?) IN ('integer', 'real') AND json_extract({column}, ?) = ?)"
        )
        params += [jpath, jpath, number]
    if value in ("true", "false", "null"):
        clauses.append(f"json_type({column}, ?) = ?")
        params += [jpath, value]
    return "(" + " OR ".join(clauses) + ")", params


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INT64 = range(-(2**63), 2**63)


def _as_number(value: str) -> int | float | None:
    """The number a value is written as, in JSON syntax only: `1_000`, ` 5` or `nan` are
    strings to match exactly, not numbers (Python's int() and float() would take them)."""
    if not _JSON_NUMBER.fullmatch(value):
        return None
    if len(value) <= 20 and "." not in value and "e" not in value.lower():
        number = int(value)
        if number in _INT64:  # SQLite binds 64-bit integers; beyond that compare as a real
            return number
    real = float(value)
    return real if real not in (float("inf"), float("-inf")) else None


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
    if event_filter.converted is not None:
        clauses.append(
            "converted_ms IS NOT NULL" if event_filter.converted else "converted_ms IS NULL"
        )
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


def can_use_rollup(event_filter: EventFilter, query: CountQuery) -> bool:
    """Whether the hourly rollup answers this count exactly."""
    return (
        query.distinct is None
        and all(g.dimension in _ROLLUP_DIMENSIONS for g in query.group_by)
        and event_filter.profile_id is None
        and event_filter.converted is None
        and not event_filter.properties
        and all(
            bound is None or bound % HOUR_MS == 0
            for bound in (event_filter.since_ms, event_filter.until_ms)
        )
    )


def _dimension_sql(group: GroupBy, *, rollup: bool) -> tuple[str, list[Any]]:
    if group.dimension == "type":
        return "type", []
    if group.dimension == "source":
        return "source_id", []
    if group.dimension == "property":
        return "json_extract(properties, ?)", [json_path(group.path)]
    if group.dimension == "converted_kind":
        return "substr(converted_by, 1, instr(converted_by, ':') - 1)", []
    size = _BUCKET_MS[group.dimension]
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
            k for k, g in zip(keys, query.group_by, strict=True) if g.dimension in _BUCKET_MS
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
