"""How events and other rows travel to PostgreSQL: one array per column (unnest), JSON as
jsonb text, and the exact JSON kept beside it where jsonb would change it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from eventstitch.storage.postgres.queries import pg_text, without_nul
from eventstitch.storage.records import EventRecord

Conn = psycopg.AsyncConnection[tuple[Any, ...]]
# One array per column, sent in binary (%b): psycopg writes binary arrays much faster than it
# quotes text ones (measured: about 1.6x the events per second through the whole writer).
EVENT_ARRAYS = (
    "%b::text[], %b::text[], %b::text[], %b::int8[], %b::bool[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::text[], %b::text[]"
)
EVENT_FIELDS = (
    "id, type, source_id, received_ms, profile_less, profile_id, session_id,"
    " properties, properties_exact, context, context_exact"
)
EVENT_VALUES = (
    "b.id, b.type, b.source_id, b.received_ms, b.profile_less, b.profile_id, b.session_id,"
    " b.properties::jsonb, b.properties_exact, b.context::jsonb, b.context_exact"
)
# One statement, so one transaction: lock the batch's sources against change until the commit,
# insert the events whose source accepts them, return what went in.
CHECKED_INSERT = (
    f"WITH b AS (SELECT * FROM unnest({EVENT_ARRAYS}, %b::text[]) AS b({EVENT_FIELDS}, kinds)),"
    " s AS (SELECT id, kind, enabled FROM sources WHERE id IN (SELECT source_id FROM b)"
    " ORDER BY id FOR SHARE)"
    f" INSERT INTO events ({EVENT_FIELDS}) SELECT {EVENT_VALUES} FROM b JOIN s"
    " ON s.id = b.source_id WHERE s.enabled AND strpos(b.kinds, ',' || s.kind || ',') > 0"
    " RETURNING id"
)
PLAIN_INSERT = (
    f"INSERT INTO events ({EVENT_FIELDS}) SELECT {EVENT_VALUES}"
    f" FROM unnest({EVENT_ARRAYS}) AS b({EVENT_FIELDS})"
)

# jsonb prints floats with a positive exponent as integers (1e+16 -> 10000000000000000) and
# has no negative zero; such documents keep their exact text too.
_INEXACT_NUMBER = re.compile(rb"[0-9]e\+|-0\.0(?![0-9])")


def jsonb_pair(value: Any) -> tuple[str, str | None]:
    """A JSON value as (text for a jsonb column, exact text when jsonb would change it)."""
    raw = orjson.dumps(value)
    if b"\\u0000" in raw:  # jsonb refuses U+0000
        return orjson.dumps(without_nul(value)).decode(), raw.decode()
    text = raw.decode()
    return text, (text if _INEXACT_NUMBER.search(raw) else None)


def event_arrays(events: Sequence[EventRecord]) -> list[list[Any]]:
    """The events as one array per column of `EVENT_FIELDS`, for unnest."""
    columns: list[list[Any]] = [[] for _ in range(11)]
    for e in events:
        properties, properties_exact = jsonb_pair(e.properties)
        context, context_exact = jsonb_pair(e.context)
        row = (
            pg_text(e.id),
            pg_text(e.type),
            pg_text(e.source_id),
            e.received_ms,
            e.profile_less,
            None if e.profile_id is None else pg_text(e.profile_id),
            None if e.session_id is None else pg_text(e.session_id),
            properties,
            properties_exact,
            context,
            context_exact,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


async def insert_events(conn: Conn, events: Sequence[EventRecord]) -> None:
    """Insert events as they are (no source check), in the current transaction; the rollup
    trigger counts them."""
    if events:
        await conn.execute(PLAIN_INSERT, event_arrays(events))


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for unnest."""
    result: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(result, row, strict=True):
            column.append(value)
    return result
