"""Events on SQLite: appended by group commit, read on reader threads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from eventstitch.storage.errors import DuplicateDelivery
from eventstitch.storage.records import (
    Claim,
    CommitPosition,
    CommitSpan,
    CountQuery,
    CountResult,
    EventFilter,
    EventRecord,
    PropertyPath,
    ValuesRow,
    Visit,
    VisitResult,
)
from eventstitch.storage.shared.backend import StoreSettings
from eventstitch.storage.shared.jobs import group_outcomes
from eventstitch.storage.shared.rows import event_from_row
from eventstitch.storage.shared.sql import count_result, total_of_groups, where_clause
from eventstitch.storage.sqlite.backfill import backfill_stored
from eventstitch.storage.sqlite.db import SqliteDb
from eventstitch.storage.sqlite.queries import SQLITE, count_sql, json_path
from eventstitch.storage.sqlite.rows import event_row
from eventstitch.storage.sqlite.visits import write_visit

_EVENT_COLUMNS = (
    "id, type, source_id, received_ms, profile_less, profile_id, session_id, properties, context,"
    " converted_ms, converted_by"
)


class SqliteEvents:
    """`EventStore` on SQLite."""

    def __init__(self, db: SqliteDb, *, settings: StoreSettings) -> None:
        self._db = db
        self._single_valued = settings.single_valued
        self._system_events = settings.system_events

    async def append(
        self,
        event: EventRecord,
        *,
        accepted_kinds: frozenset[str],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> str | None:
        # Queued for the writer's next batch; answered once committed.
        profile: str | None = await self._db.event_writer.submit_event(
            event, accepted_kinds, claim, delivery_key
        )
        return profile

    async def append_group(
        self,
        items: Sequence[tuple[EventRecord, Claim | None, str | None]],
        *,
        accepted_kinds: frozenset[str],
    ) -> list[str | DuplicateDelivery | None]:
        return await group_outcomes(self._db.event_writer.submit_group(list(items), accepted_kinds))

    async def get(self, event_id: str) -> EventRecord | None:
        def select(conn: sqlite3.Connection) -> EventRecord | None:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)
            ).fetchone()
            return event_from_row(row) if row else None

        return await self._db.read(select)

    async def list_page(
        self, event_filter: EventFilter, *, limit: int, before_id: str | None
    ) -> list[EventRecord]:
        where, params = where_clause(SQLITE, event_filter, before_id=before_id)

        def select(conn: sqlite3.Connection) -> list[EventRecord]:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [event_from_row(row) for row in rows]

        return await self._db.read(select)

    async def values_page(
        self,
        event_filter: EventFilter,
        paths: Sequence[PropertyPath],
        *,
        limit: int,
        before_id: str | None,
    ) -> list[ValuesRow] | None:
        selected = _values_selected(paths)
        if selected is None:
            return None
        columns, json_paths = selected
        where, params = where_clause(SQLITE, event_filter, before_id=before_id)

        def select(conn: sqlite3.Connection) -> list[ValuesRow]:
            rows = conn.execute(
                f"SELECT {columns} FROM events{where} ORDER BY id DESC LIMIT ?",
                (*json_paths, *params, limit),
            )
            return _values_rows(rows)

        return await self._db.read(select)

    async def commit_span(
        self, event_filter: EventFilter, *, after: CommitPosition | None
    ) -> CommitSpan | None:
        # The rowid: every write transaction takes SQLite's one write lock and appends past the
        # largest rowid, so rowids grow in commit order. Events are deleted only by erasure,
        # which forgets the kept tails too; should the newest go otherwise, the largest rowid
        # is behind `after` and could be given again: start again.
        def select(conn: sqlite3.Connection) -> CommitSpan:
            (last,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
            if after is None or int(last) < int(after):
                return None, int(last)
            return after, int(last)

        return await self._db.read(select)

    async def values_committed(
        self,
        event_filter: EventFilter,
        paths: Sequence[PropertyPath],
        *,
        span: CommitSpan,
        resume: CommitPosition | None,
        limit: int,
    ) -> tuple[list[ValuesRow], CommitPosition | None] | None:
        selected = _values_selected(paths)
        if selected is None:
            return None
        columns, json_paths = selected
        where, params = where_clause(SQLITE, event_filter)
        within = f"{where} AND" if where else " WHERE"
        # NOT INDEXED: walk the table's own b-tree over a window of rowids (the id index a
        # time bound would otherwise pick reads the whole tail and sorts it).
        sql = (
            f"SELECT {columns} FROM events NOT INDEXED{within} rowid > ? AND rowid <= ?"
            " ORDER BY rowid"
        )
        # The first rowid from the time bounds alone: an index range, never a payload read.
        # `+rowid`, not `rowid`: SQLite answers a bare min(rowid) by walking the table from its
        # first row until one is in range, past every event older than the tail (0.28 s at a
        # million events, on every first ask); `+` leaves it the id index's range.
        in_time = EventFilter(since_ms=event_filter.since_ms, until_ms=event_filter.until_ms)
        first_where, first_params = where_clause(SQLITE, in_time)
        after, upto = int(span[0]) if span[0] is not None else None, int(span[1])

        def select(conn: sqlite3.Connection) -> tuple[list[ValuesRow], CommitPosition | None]:
            if resume is not None:
                start = int(resume)
            elif after is not None:
                start = after
            else:
                (first,) = conn.execute(
                    f"SELECT min(+rowid) FROM events{first_where}", first_params
                ).fetchone()
                start = upto if first is None else int(first) - 1
            end = min(start + limit, upto)  # a window of rowids holds at most `limit` events
            rows = conn.execute(sql, (*json_paths, *params, start, end))
            return _values_rows(rows), (end if end < upto else None)

        return await self._db.read(select)

    async def count(self, event_filter: EventFilter, query: CountQuery) -> CountResult:
        sql, params, from_rollup = count_sql(event_filter, query)

        def select(conn: sqlite3.Connection) -> CountResult:
            rows = conn.execute(sql, params).fetchall()
            result = count_result(rows, query, from_rollup=from_rollup)
            total = total_of_groups(result, query)
            if total is None:  # counted apart: some events are in several groups
                total_sql, total_params, _ = count_sql(event_filter, CountQuery(group_by=()))
                total = conn.execute(total_sql, total_params).fetchone()[0]
            result.total = int(total or 0)
            return result

        return await self._db.read(select)

    async def track(self, visit: Visit) -> VisitResult:
        single_valued, system_events = self._single_valued, self._system_events
        return await self._db.write(
            lambda conn: write_visit(
                conn, visit, single_valued=single_valued, system_events=system_events
            )
        )

    async def backfill(
        self, items: list[tuple[str, int, Claim]], *, checkpoint: tuple[str, str | None]
    ) -> int:
        single_valued, system_events = self._single_valued, self._system_events
        return await self._db.write(
            lambda conn: backfill_stored(
                conn,
                items,
                checkpoint=checkpoint,
                single_valued=single_valued,
                system_events=system_events,
            )
        )

    async def checkpoint(self, name: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
            return str(row[0]) if row else None

        return await self._db.read(select)

    async def import_batch(self, events: list[EventRecord]) -> int:
        if not events:
            return 0
        marks = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(events))
        values = [
            value for e in events for value in (*event_row(e), e.converted_ms, e.converted_by)
        ]

        def insert(conn: sqlite3.Connection) -> int:
            # The rollup triggers count exactly the rows that go in.
            cursor = conn.execute(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES {marks} ON CONFLICT (id) DO NOTHING",
                values,
            )
            return int(cursor.rowcount)

        return await self._db.write(insert)


def _values_selected(paths: Sequence[PropertyPath]) -> tuple[str, list[str]] | None:
    """The columns of a values row (`ValuesRow`) and the JSON paths they bind, or None when
    SQLite cannot name one of the paths. `->` gives a value's JSON text as stored (numbers as
    written), so it reads back as the value Python would find in the parsed payload."""
    json_paths = [json_path(path) for path in paths]
    if sqlite3.sqlite_version_info < (3, 38) or None in json_paths:
        return None
    taken = "".join(", properties -> ?" for _ in json_paths)
    return f"id, type, source_id, received_ms{taken}", [p for p in json_paths if p is not None]


def _values_rows(rows: Iterable[tuple[Any, ...]]) -> list[ValuesRow]:
    return [(r[0], r[1], r[2], r[3], r[4:]) for r in rows]
