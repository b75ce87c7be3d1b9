"""SQLite's SQL dialect, and its event filters and counts (built in `shared.sql`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from eventstitch.paths import EACH, Segment
from eventstitch.storage.records import CountQuery, EventFilter, PropertyPath
from eventstitch.storage.shared.dialect import Dialect, Fragment
from eventstitch.storage.shared.query_plan import as_number
from eventstitch.storage.shared.sql import count_order, grouped_count

# What the stored JSON text escapes (orjson: `"`, `\\` and control characters). SQLite's path
# syntax cannot say `"` inside a quoted label, and before 3.45 compares a label with the key as
# written in the text, escapes and all; a key free of these is found by a path.
_ESCAPED_IN_TEXT = re.compile(r'["\\\x00-\x1f]')


def json_path(path: PropertyPath) -> str | None:
    """A SQLite JSON path with every key quoted, so dots, brackets or `$` in a key stay
    literal; None when a segment is not a key (an index may be a key, see `_walk`) or a key
    cannot be written in one (see `_ESCAPED_IN_TEXT`)."""
    keys = [s for s in path if isinstance(s, str)]
    if len(keys) != len(path) or any(_ESCAPED_IN_TEXT.search(key) for key in keys):
        return None
    return "$" + "".join('."' + key + '"' for key in keys)


def _opens(segment: Segment | None) -> str:
    """The JSON types the walk opens for a segment: a key reads objects, `[*]` arrays, and an
    index both (an array's element, or that key of an object)."""
    if segment is EACH:
        return "('array')"
    if isinstance(segment, int):
        return "('object', 'array')"
    return "('object')"


def _walk(path: PropertyPath) -> Fragment:
    """`FROM ... WHERE ...` reaching each value at `path` segment by segment through json_each,
    which compares each key decoded, so any key is found; the value's row is `p{len(path) - 1}`,
    one row per element under `[*]`. An array's keys are integers and an object's text, so an
    index bound as both finds an element or a key, and a key never an element."""
    tables: list[str] = []
    terms: list[str] = []
    params: list[Any] = []
    opened = "properties"
    for depth, segment in enumerate(path):
        row = f"p{depth}"
        tables.append(f"json_each({opened}) AS {row}")
        if isinstance(segment, int):
            terms.append(f"({row}.key = ? OR {row}.key = ?)")
            params += [segment, str(segment)]
        elif isinstance(segment, str):
            terms.append(f"{row}.key = ?")
            params.append(segment)
        following = path[depth + 1] if depth + 1 < len(path) else None
        opened = f"CASE WHEN {row}.type IN {_opens(following)} THEN {row}.value END"
    return f"FROM {', '.join(tables)} WHERE {' AND '.join(terms) or '1'}", params


def _typed_equal(type_of: Fragment, value_of: Fragment, value: str) -> Fragment:
    """A JSON value (its json_type and its SQL value) equal to a query-string value: strings
    exactly, a value written as a JSON number with numbers numerically, `true`/`false`/`null`
    with those JSON literals."""
    (type_sql, type_params), (value_sql, value_params) = type_of, value_of
    clauses = [f"({type_sql} = 'text' AND {value_sql} = ?)"]
    params: list[Any] = [*type_params, *value_params, value]
    number = as_number(value)
    if number is not None:
        clauses.append(f"({type_sql} IN ('integer', 'real') AND {value_sql} = ?)")
        params += [*type_params, *value_params, number]
    if value in ("true", "false", "null"):
        clauses.append(f"{type_sql} = ?")
        params += [*type_params, value]
    return "(" + " OR ".join(clauses) + ")", params


def _literal_match(path: PropertyPath, value: str) -> Fragment:
    """Equality of a property with a query-string value (see `_typed_equal`): by its path when
    it has one, else by walking to it."""
    jpath = json_path(path)
    if jpath is not None:
        return _typed_equal(
            ("json_type(properties, ?)", [jpath]), ("json_extract(properties, ?)", [jpath]), value
        )
    walk, keys = _walk(path)
    row = f"p{len(path) - 1}"
    clause, params = _typed_equal((f"{row}.type", []), (f"{row}.value", []), value)
    return f"EXISTS (SELECT 1 {walk} AND {clause})", keys + params  # any element under [*]


def _property_value(path: PropertyPath) -> Fragment:
    """The value at `path` as json_extract gives it; NULL when missing or JSON null."""
    jpath = json_path(path)
    if jpath is not None:
        return "json_extract(properties, ?)", [jpath]
    walk, keys = _walk(path)
    return f"(SELECT p{len(path) - 1}.value {walk})", keys


def _property_values(path: PropertyPath, alias: str) -> Fragment:
    """A join whose `{alias}.value` is each distinct value the elements under `[*]` hold, or one
    NULL when they hold none, so the event is still counted (in the null group)."""
    walk, keys = _walk(path)
    row = f"p{len(path) - 1}"
    values = (
        f"(SELECT COALESCE(NULLIF(json_group_array(DISTINCT {row}.value), '[]'), '[null]')"
        f" {walk} AND {row}.value IS NOT NULL)"
    )
    return f" JOIN json_each({values}) AS {alias}", keys


def _in_list(column: str, values: Sequence[str]) -> Fragment:
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def _same(value: str) -> str:
    return value


SQLITE = Dialect(
    mark="?",
    percent="%",
    true="1",
    text=_same,
    flag=int,
    json=lambda value: orjson.dumps(value).decode(),
    in_list=_in_list,
    property_match=_literal_match,
    property_value=_property_value,
    property_values=_property_values,
    converted_kind="substr(converted_by, 1, instr(converted_by, ':') - 1)",
)


def count_sql(event_filter: EventFilter, query: CountQuery) -> tuple[str, list[Any], bool]:
    """SELECT keys..., count, distinct? grouped by the query's dimensions; and whether it reads
    the rollup. One extra row beyond `max_rows` is asked for, to detect truncation."""
    grouped = grouped_count(SQLITE, event_filter, query)
    sql, params = grouped.sql, grouped.params
    if grouped.keys:
        if query.ordered:
            sql += f" ORDER BY {count_order(grouped.keys, query, lambda key, _: [f'{key} ASC'])}"
        sql += " LIMIT ?"
        params.append(query.max_rows + 1)
    return sql, params, grouped.from_rollup
