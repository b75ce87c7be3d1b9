"""PostgreSQL's SQL dialect, and its event filters and counts (built in `shared.sql`).

Same meaning as on SQLite: a property equals a query-string value when it is that string, or
that number (numerically), or the JSON literal `true`, `false` or `null`; here each candidate
is a jsonb containment the GIN index serves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from eventstitch.paths import EACH
from eventstitch.storage.records import CountQuery, EventFilter, GroupBy, PropertyPath
from eventstitch.storage.shared.dialect import Dialect, Fragment
from eventstitch.storage.shared.query_plan import as_number
from eventstitch.storage.shared.sql import count_order, grouped_count

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


def jsonb_text(value: Any) -> str:
    """A JSON value as jsonb text; U+0000 in strings becomes U+FFFD."""
    raw = orjson.dumps(value)
    return orjson.dumps(without_nul(value)).decode() if b"\\u0000" in raw else raw.decode()


def _nested(path: PropertyPath, value: Any) -> str:
    """`{"a":{"b":value}}` for path (a, b), `{"a":[{"b":value}]}` for `a[*].b`, as jsonb text
    for a containment test: an array contains a document when any element does."""
    document: Any = value
    for segment in reversed(path):
        document = [document] if segment is EACH else {pg_text(str(segment)): document}
    return orjson.dumps(document).decode()


def _candidates(value: str) -> list[Any]:
    """The JSON values a query-string value equals: that string, that number, that literal."""
    candidates: list[Any] = [pg_text(value)]
    number = as_number(value)
    if number is not None:
        candidates.append(number)
    if value in _LITERALS:
        candidates.append(_LITERALS[value])
    return candidates


# What PostgreSQL's `#>` reads as an array index (strtol: spaces, a sign, leading zeros): a
# key like that must not reach an array's element, so its path is walked with `->`.
_READS_AS_INDEX = re.compile(r"\s*[+-]?[0-9]+")


def value_at(base: str, path: PropertyPath) -> Fragment:
    """The value at a path without `[*]` below `base`: a key with `->` (never an array's
    element), an index with `#>` (an array's element, or that key of an object)."""
    if all(isinstance(s, str) and not _READS_AS_INDEX.fullmatch(s) for s in path):
        return f"({base} #> %s::text[])", [[pg_text(str(s)) for s in path]]
    sql, params = base, list[Any]()
    for segment in path:
        if isinstance(segment, int):
            sql, params = f"({sql} #> %s::text[])", [*params, [str(segment)]]
        else:
            sql, params = f"({sql} -> %s::text)", [*params, pg_text(str(segment))]
    return sql, params


def _elements(path: PropertyPath) -> tuple[str, list[Any], str]:
    """`FROM ...` of one row per element under the path's `[*]`, and the element's value."""
    at = path.index(EACH)
    array, params = value_at("events.properties", path[:at])
    rest, rest_params = (
        value_at("e.value", path[at + 1 :]) if at + 1 < len(path) else ("e.value", [])
    )
    source = (
        f"FROM (SELECT {array} AS v) AS a,"
        " jsonb_array_elements(CASE WHEN jsonb_typeof(a.v) = 'array' THEN a.v END) AS e"
    )
    return source, params + rest_params, rest


def _literal_match(path: PropertyPath, value: str) -> Fragment:
    """Equality of a property with a query-string value. A path of keys (and a `[*]`) is one or
    more jsonb containments, each of which the GIN index (jsonb_path_ops) serves. Containment
    compares scalars exactly: strings by content, numbers numerically (5 matches 5.0), and
    `true`/`false`/`null` only themselves; below the top level an array never contains a bare
    scalar, so `a=x` does not match `{"a": ["x"]}`, as on SQLite. A path with an index compares
    the value it reaches with jsonb equality, which means the same."""
    candidates = _candidates(value)
    if not any(isinstance(s, int) for s in path):
        clauses = ["properties @> %s::jsonb"] * len(candidates)
        return "(" + " OR ".join(clauses) + ")", [_nested(path, c) for c in candidates]
    texts = [jsonb_text(c) for c in candidates]
    if EACH not in path:
        sql, params = value_at("events.properties", path)
        return f"({sql} = ANY(%s::jsonb[]))", [*params, texts]
    source, params, element = _elements(path)
    return f"EXISTS (SELECT 1 {source} WHERE {element} = ANY(%s::jsonb[]))", [*params, texts]


def _in_list(column: str, values: Sequence[str]) -> Fragment:
    return f"{column} = ANY(%s::text[])", [[pg_text(v) for v in values]]


def _grouped(value: str) -> str:
    """A jsonb value grouped as SQLite's json_extract groups it: JSON null and a missing key
    alike as SQL NULL, and true and false as the numbers 1 and 0 (so `false` and `0` are one
    group, as their keys in the answer are the same)."""
    return (
        f"(CASE WHEN jsonb_typeof({value}) = 'boolean' THEN to_jsonb(({value})::boolean::int)"
        f" ELSE NULLIF({value}, 'null'::jsonb) END)"
    )


def _property_value(path: PropertyPath) -> Fragment:
    """The value at a path without `[*]`, grouped as on SQLite (see `_grouped`)."""
    sql, params = value_at("events.properties", path)
    return _grouped(sql), params * 3


def _property_values(path: PropertyPath, alias: str) -> Fragment:
    """A join whose `{alias}.value` is each distinct value the elements under `[*]` hold, or one
    NULL when they hold none, so the event is still counted (in the null group)."""
    source, params, element = _elements(path)
    value = _grouped("x.v")
    return (
        f" LEFT JOIN LATERAL (SELECT DISTINCT {value} AS value {source},"
        f" LATERAL (SELECT {element} AS v) AS x WHERE {value} IS NOT NULL) AS {alias} ON true",
        params,
    )


POSTGRES = Dialect(
    mark="%s",
    percent="%%",  # psycopg's literal %
    true="true",
    text=pg_text,
    flag=bool,
    json=jsonb_text,
    in_list=_in_list,
    property_match=_literal_match,
    property_value=_property_value,
    property_values=_property_values,
    converted_kind="split_part(converted_by, ':', 1)",
)


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
    grouped = grouped_count(POSTGRES, event_filter, query)
    params, keys = grouped.params, grouped.keys
    if not keys:
        return grouped.sql, params, grouped.from_rollup
    order = f" ORDER BY {count_order(keys, query, _order_keys)}" if query.ordered else ""
    outputs = [
        f"{k}::text" if g.dimension == "property" else k
        for k, g in zip(keys, query.group_by, strict=True)
    ]
    outputs += ["n", "d"] if query.distinct is not None else ["n"]
    sql = f"SELECT {', '.join(outputs)} FROM ({grouped.sql}) AS groups{order} LIMIT %s"
    params.append(query.max_rows + 1)
    return sql, params, grouped.from_rollup


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
