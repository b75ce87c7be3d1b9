"""The statements the SQLite writer inserts events with, and their rows.

The source check rides inside each insert, so that a source disabled by any process before the
statement takes no event from it; the linked variants carry who the event belongs to.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import orjson

from eventstitch.storage.errors import StorageUnavailable
from eventstitch.storage.records import EventRecord
from eventstitch.storage.shared.refusals import kinds_text, refusal


class PendingEvent(Protocol):
    """An event waiting in the writer's queue, with its checked-insert row."""

    @property
    def event(self) -> EventRecord: ...

    @property
    def row(self) -> tuple[Any, ...]: ...

    @property
    def kinds(self) -> str: ...


P = TypeVar("P", bound=PendingEvent)


EVENT_COLUMNS = (
    "id, type, source_id, received_ms, profile_less, profile_id, session_id, properties, context"
)
INSERT_EVENTS = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES "
EVENT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _checked(columns: str) -> str:
    """An insert of `columns` from a VALUES list whose source check rides inside it: a row
    goes in only if its source (column3) exists, is enabled and is of a kind listed in the
    column after the inserted ones (",webhook,"). A source disabled by any process before
    this statement takes no event from it."""
    width = len(columns.split(","))
    selected = ", ".join(f"column{n}" for n in range(1, width + 1))
    return (
        f"INSERT INTO events ({columns}) SELECT {selected} FROM (VALUES {{rows}}) AS batch"
        " WHERE EXISTS (SELECT 1 FROM sources AS s WHERE s.id = batch.column3"
        f" AND s.enabled = 1 AND instr(batch.column{width + 1}, ',' || s.kind || ',') > 0)"
    )


CHECKED_INSERT = _checked(EVENT_COLUMNS)
CHECKED_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# The same, for events whose identity was decided before the insert: they go in linked, with
# when and by which identifier they were converted (column10, column11; kinds in column12).
CHECKED_LINKED_INSERT = _checked(f"{EVENT_COLUMNS}, converted_ms, converted_by")
CHECKED_LINKED_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# The same again, for events linked to owners this writer remembers from earlier batches: a
# row goes in only if its profile (column6) is also still live. Identifiers move only when
# their profile is merged away or erased, so a live profile still holds what it held.
CHECKED_KNOWN_INSERT = CHECKED_LINKED_INSERT + (
    " AND (batch.column6 IS NULL OR EXISTS (SELECT 1 FROM profiles AS p"
    " WHERE p.id = batch.column6 AND p.merged_into IS NULL))"
)


def insert_rows(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    params: list[Any] = []
    add = params.extend
    for row in rows:
        add(row)
    return int(conn.execute(sql, params).rowcount)


@functools.lru_cache(maxsize=64)
def kinds_param(kinds: frozenset[str]) -> str:
    """The accepted kinds as the checked insert matches them: ",webhook,"."""
    return kinds_text(list(kinds))


@functools.lru_cache(maxsize=256)
def checked_insert_sql(rows: int) -> str:
    return CHECKED_INSERT.format(rows=",".join([CHECKED_VALUES] * rows))


@functools.lru_cache(maxsize=256)
def checked_linked_insert_sql(rows: int) -> str:
    return CHECKED_LINKED_INSERT.format(rows=",".join([CHECKED_LINKED_VALUES] * rows))


@functools.lru_cache(maxsize=256)
def checked_known_insert_sql(rows: int) -> str:
    return CHECKED_KNOWN_INSERT.format(rows=",".join([CHECKED_LINKED_VALUES] * rows))


def linked_row(row: tuple[Any, ...], link: tuple[str, str] | None, now: int) -> tuple[Any, ...]:
    """A checked-insert row (`CHECKED_VALUES`) as a linked one (`CHECKED_LINKED_VALUES`)."""
    if link is None:
        return (*row[:9], None, None, row[9])
    return (*row[:5], link[0], *row[6:9], now, link[1], row[9])


def explain_refusals(
    conn: sqlite3.Connection, events: Sequence[tuple[int, P]], results: list[Any]
) -> list[tuple[int, P]]:
    """Which events a checked insert left out, and why (the rare path): their source refused
    them, marked in `results`; returned are those left out although their source takes them
    (a known owner that is no longer a live profile)."""
    ids = [job.event.id for _, job in events]
    stored = {
        row[0]
        for row in conn.execute(
            f"SELECT id FROM events WHERE id IN ({','.join('?' * len(ids))})", ids
        )
    }
    source_ids = list({job.event.source_id for _, job in events})
    sources = {
        row[0]: (row[1], bool(row[2]))
        for row in conn.execute(
            "SELECT id, kind, enabled FROM sources"
            f" WHERE id IN ({','.join('?' * len(source_ids))})",
            source_ids,
        )
    }
    takers = []
    for index, job in events:
        event = job.event
        if event.id in stored:
            continue
        refused = refusal(event.source_id, sources.get(event.source_id), job.kinds)
        if refused is None:
            takers.append((index, job))
        else:
            results[index] = refused
    return takers


def insert_events(conn: sqlite3.Connection, events: list[EventRecord]) -> None:
    """Insert events as they are (no source check), in the current transaction; the rollup
    triggers count them."""
    if not events:
        return
    conn.execute(
        INSERT_EVENTS + ",".join([EVENT_VALUES] * len(events)),
        [value for event in events for value in event_row(event)],
    )


def event_row(event: EventRecord) -> tuple[Any, ...]:
    """The bound values of one event row (columns as in `INSERT_EVENTS`)."""
    return (
        event.id,
        event.type,
        event.source_id,
        event.received_ms,
        int(event.profile_less),
        event.profile_id,
        event.session_id,
        orjson.dumps(event.properties).decode(),
        orjson.dumps(event.context).decode(),
    )


def insert_checked(
    conn: sqlite3.Connection, events: list[tuple[int, P]], results: list[Any]
) -> int:
    """Insert the events whose source exists, is enabled and is of an accepted kind, in one
    statement; mark the others refused in `results`. Returns how many were stored."""
    if not events:
        return 0
    stored = insert_rows(conn, checked_insert_sql(len(events)), [job.row for _, job in events])
    if stored < len(events):
        not_stored(explain_refusals(conn, events, results), results)
    return stored


def not_stored(events: list[tuple[int, P]], results: list[Any]) -> None:
    """Left out by an insert whose checks their source passes: cannot happen with the checks
    of `CHECKED_INSERT`, but an event not stored must never be answered as stored."""
    for index, _ in events:
        results[index] = StorageUnavailable("the event was not stored; retry")
