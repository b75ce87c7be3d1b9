"""SQL for event filters and counts on PostgreSQL, built from fixed fragments and bound values.

Same meaning as `sqlite_queries`: time bounds become id bounds (UUIDv7), counts read the hourly
rollup when it answers exactly, and a property equals a query-string value when it is that
string, or that number (numerically), or the JSON literal `true`, `false` or `null`.
"""

from __future__ import annotations

from typing import Any

import orjson

from eventstitch.identity.resolution import SYSTEM_SOURCE_ID
from eventstitch.ids import id_floor
from eventstitch.storage.records import CountQuery, EventFilter, GroupBy, PropertyPath
from eventstitch.storage.shared.query_plan import (
    BUCKET_MS,
    as_number,
    can_use_rollup,
)

_LITERALS = {"true": True, "false": False, "null": None}


def pg_text(value: str) -> str:
    """A string PostgreSQL can hold: text refuses U+0000, so it becomes U+FFFD (which no id,
    type or source id contains, so such a filter value still matches nothing)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def without_nul(value: Any) -> Any:
    """A JSON value with U+0000 replaced by U+FFFD in every string and key (see `pg_text`)."""
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def _nested(path: PropertyPath, value: Any) -> str:
    """`{"a":{"b":value}}` for path (a, b), as jsonb text for a containment test."""
    document: Any = value
    for key in reversed(path):
        document = {pg_text(key): document}
    return orjson.dumps(document).decode()


def _literal_match(path: PropertyPath, value: str) -> tuple[str, list[Any]]:
    """Equality of a property with a query-string value, as one or more jsonb containments,
    each of which the GIN index (jsonb_path_ops) serves. Containment compares scalars exactly:
    strings by content, numbers numerically (5 matches 5.0), and `true`/`false`/`null` only
    themselves; below the top level an array never contains a bare scalar, so `a=x` does not
    match `{"a": ["x"]}`, as on SQLite."""
    candidates: list[Any] = [pg_text(value)]
    number = as_number(value)
    if number is not None:
        candidates.append(number)
    if value in _LITERALS:
        candidates.append(_LITERALS[value])
    clauses = ["properties @> %s::jsonb"] * len(candidates)
    return "(" + " OR ".join(clauses) + ")", [_nested(path, c) for c in candidates]


def where_clause(
    event_filter: EventFilter, *, before_id: str | None = None
) -> tuple[str, list[Any]]:
    """The WHERE clause over `events` for a filter. Time bounds become id bounds (UUIDv7)."""
    clauses: list[str] = []
    params: list[Any] = []
    if event_filter.types:
        clauses.append("type = ANY(%s::text[])")
        params.append([pg_text(t) for t in event_filter.types])
    if event_filter.source_ids:
        clauses.append("source_id = ANY(%s::text[])")
        params.append([pg_text(s) for s in event_filter.source_ids])
    if event_filter.profile_less is not None:
        clauses.append("profile_less = %s")
        params.append(event_filter.profile_less)
    if event_filter.profile_id is not None:
        clauses.append("profile_id = %s")
        params.append(pg_text(event_filter.profile_id))
    if event_filter.converted:
        clauses.append("converted_ms IS NOT NULL")
    elif event_filter.converted is not None:
        # Still waiting: collected without a profile and not linked since (see sqlite_queries).
        clauses.append("profile_less AND converted_ms IS NULL AND source_id <> %s")
        params.append(SYSTEM_SOURCE_ID)
    if event_filter.since_ms is not None:
        clauses.append("id >= %s")
        params.append(id_floor(event_filter.since_ms))
    if event_filter.until_ms is not None:
        clauses.append("id < %s")
        params.append(id_floor(event_filter.until_ms))
    if before_id is not None:
        clauses.append("id < %s")
        params.append(pg_text(before_id))
    for path, value in event_filter.properties:
        clause, values = _literal_match(path, value)
        clauses.append(clause)
        params += values
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _path_param(path: PropertyPath) -> list[str]:
    return [pg_text(key) for key in path]


def _dimension_sql(group: GroupBy, *, rollup: bool) -> tuple[str, list[Any]]:
    if group.dimension == "type":
        return "type", []
    if group.dimension == "source":
        return "source_id", []
    if group.dimension == "property":
        # JSON null and a missing key are one group, as SQL NULL, like SQLite's json_extract.
        return "NULLIF(properties #> %s::text[], 'null'::jsonb)", [_path_param(group.path)]
    if group.dimension == "converted_kind":
        return "split_part(converted_by, ':', 1)", []
    size = BUCKET_MS[group.dimension]
    column = "hour" if rollup else "received_ms"
    return f"({column} - {column} %% {size})", []  # %% is psycopg's literal %


def _order_keys(key: str, group: GroupBy) -> list[str]:
    """Sort expressions that order a key as SQLite orders json_extract values: NULL first, then
    numbers (booleans are 0 and 1 there), then text byte by byte (objects and arrays as JSON)."""
    if group.dimension != "property":
        return [f"{key} ASC NULLS FIRST"]  # text columns are all COLLATE "C"
    kind = f"jsonb_typeof({key})"
    return [
        f"(CASE WHEN {key} IS NULL THEN 0 WHEN {kind} IN ('number', 'boolean') THEN 1 ELSE 2 END)",
        f"(CASE {kind} WHEN 'number' THEN ({key})::numeric"
        f" WHEN 'boolean' THEN ({key})::boolean::int END)",
        f"(CASE {kind} WHEN 'string' THEN {key} #>> '{{}}' ELSE {key}::text END) COLLATE \"C\"",
    ]


def count_sql(event_filter: EventFilter, query: CountQuery) -> tuple[str, list[Any], bool]:
    """SELECT keys..., count, distinct? grouped by the query's dimensions; and whether it reads
    the rollup. Property keys come back as jsonb text (see `key_value`). One extra row beyond
    `max_rows` is asked for, to detect truncation."""
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
            columns.append("COUNT(DISTINCT NULLIF(properties #> %s::text[], 'null'::jsonb)) AS d")
            params.append(_path_param(query.distinct))
        where, where_params = where_clause(event_filter)
        table = "events"
    inner = f"SELECT {', '.join(columns)} FROM {table}{where}"
    params += where_params
    if not keys:
        return inner, params, rollup
    inner += f" GROUP BY {', '.join(keys)}"
    if rollup:  # erased events leave rollup rows at zero; a group of none is no group
        inner += " HAVING SUM(count) > 0"
    time_keys = [k for k, g in zip(keys, query.group_by, strict=True) if g.dimension in BUCKET_MS]
    order = (
        [f"{k} ASC" for k in time_keys]
        + ["n DESC"]
        + [
            expression
            for k, g in zip(keys, query.group_by, strict=True)
            if k not in time_keys
            for expression in _order_keys(k, g)
        ]
    )
    outputs = [
        f"{k}::text" if g.dimension == "property" else k
        for k, g in zip(keys, query.group_by, strict=True)
    ]
    outputs += ["n", "d"] if query.distinct is not None else ["n"]
    sql = (
        f"SELECT {', '.join(outputs)} FROM ({inner}) AS groups ORDER BY {', '.join(order)} LIMIT %s"
    )
    params.append(query.max_rows + 1)
    return sql, params, rollup


def key_value(group: GroupBy, key: Any) -> Any:
    """A group's key as SQLite's json_extract gives it: strings and numbers as they are, true
    and false as 1 and 0, objects and arrays as JSON text."""
    if group.dimension != "property" or key is None:
        return key
    value = orjson.loads(key)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _rollup_where(event_filter: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if event_filter.types:
        clauses.append("type = ANY(%s::text[])")
        params.append([pg_text(t) for t in event_filter.types])
    if event_filter.source_ids:
        clauses.append("source_id = ANY(%s::text[])")
        params.append([pg_text(s) for s in event_filter.source_ids])
    if event_filter.profile_less is not None:
        clauses.append("profile_less = %s")
        params.append(event_filter.profile_less)
    if event_filter.since_ms is not None:
        clauses.append("hour >= %s")
        params.append(event_filter.since_ms)
    if event_filter.until_ms is not None:
        clauses.append("hour < %s")
        params.append(event_filter.until_ms)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
