"""SQLite's SQL dialect, and its event filters and counts (built in `shared.sql`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from eventstitch.storage.records import CountQuery, EventFilter, PropertyPath
from eventstitch.storage.shared.dialect import Dialect, Fragment
from eventstitch.storage.shared.query_plan import as_number
from eventstitch.storage.shared.sql import count_order, grouped_count


def json_path(path: PropertyPath) -> str:
    """A SQLite JSON path with every key quoted, so dots or spaces in a key stay literal."""
    return "$" + "".join('."' + key.replace('"', '""') + '"' for key in path)


def _literal_match(path: PropertyPath, value: str) -> Fragment:
    """Equality of a property with a query-string value: strings exactly, a value written as a
    JSON number with numbers numerically, `true`/`false`/`null` with those JSON literals."""
    jpath = json_path(path)
    column = "properties"
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
    property_value=lambda path: ("json_extract(properties, ?)", [json_path(path)]),
    converted_kind="substr(converted_by, 1, instr(converted_by, ':') - 1)",
)


def count_sql(event_filter: EventFilter, query: CountQuery) -> tuple[str, list[Any], bool]:
    """SELECT keys..., count, distinct? grouped by the query's dimensions; and whether it reads
    the rollup. One extra row beyond `max_rows` is asked for, to detect truncation."""
    grouped = grouped_count(SQLITE, event_filter, query)
    sql, params = grouped.sql, grouped.params
    if grouped.keys:
        order = count_order(grouped.keys, query, lambda key, _: [f"{key} ASC"])
        sql += f" ORDER BY {order} LIMIT ?"
        params.append(query.max_rows + 1)
    return sql, params, grouped.from_rollup
