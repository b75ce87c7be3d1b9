"""Rejections on SQLite: written by the writer when no event waits, read on reader threads.

Each write inserts a batch, deletes what the bounds no longer allow and adds the deletions to
the drop totals in the same transaction, so the table never holds more than its bounds for
longer than one write, and every deletion is counted exactly once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from eventstitch.ids import id_floor
from eventstitch.storage.records import RejectionBounds, RejectionFilter, RejectionRecord
from eventstitch.storage.shared.rejection_rows import (
    COLUMNS,
    LIST_COLUMNS,
    add_drops_sql,
    drop_totals,
    filter_sql,
    insert_sql,
    over_bytes_sql,
    rejection_from_row,
    rejection_row,
)
from eventstitch.storage.sqlite.db import SqliteDb
from eventstitch.storage.sqlite.queries import SQLITE

_INSERT = insert_sql(SQLITE)
_OVER_BYTES = over_bytes_sql(SQLITE)
_ADD_DROPS = add_drops_sql(SQLITE)


class SqliteRejections:
    """`RejectionStore` on SQLite."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def add(
        self,
        rejections: Sequence[RejectionRecord],
        *,
        bounds: RejectionBounds,
        lost: Mapping[str, int],
    ) -> dict[str, int]:
        rows = [rejection_row(r) for r in rejections]  # encoded here, not on the writer thread
        oldest = id_floor(bounds.min_received_ms)

        def apply(conn: sqlite3.Connection) -> dict[str, int]:
            if rows:
                conn.executemany(_INSERT, rows)
            aged = conn.execute("DELETE FROM rejections WHERE id < ?", (oldest,)).rowcount
            over = conn.execute(
                "DELETE FROM rejections WHERE id IN"
                " (SELECT id FROM rejections ORDER BY id DESC LIMIT -1 OFFSET ?)",
                (bounds.max_rows,),
            ).rowcount
            heavy = conn.execute(_OVER_BYTES, (bounds.max_bytes,)).rowcount
            deleted = {"max_age": aged, "max_rows": over, "max_bytes": heavy}
            drops = drop_totals(lost, deleted)
            if drops:
                conn.executemany(_ADD_DROPS, drops)
            return deleted

        # Refused requests wait for the events: never in the same transaction as one.
        return await self._db.write_when_idle(apply)

    async def get(self, rejection_id: str) -> RejectionRecord | None:
        def select(conn: sqlite3.Connection) -> RejectionRecord | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM rejections WHERE id = ?", (rejection_id,)
            ).fetchone()
            return rejection_from_row(row) if row else None

        return await self._db.read(select)

    async def list_page(
        self, rejection_filter: RejectionFilter, *, limit: int, before_id: str | None
    ) -> list[RejectionRecord]:
        where, params = filter_sql(SQLITE, rejection_filter, before_id)

        def select(conn: sqlite3.Connection) -> list[RejectionRecord]:
            rows = conn.execute(
                f"SELECT {LIST_COLUMNS} FROM rejections{where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [rejection_from_row(row) for row in rows]

        return await self._db.read(select)

    async def dropped(self) -> dict[str, int]:
        def select(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT cause, total FROM rejection_drops ORDER BY cause")
            return {row[0]: int(row[1]) for row in rows}

        return await self._db.read(select)

    async def claim_replay(self, rejection_id: str, *, at_ms: int) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    "UPDATE rejections SET replayed_ms = ?, replayed_event_ids = '[]'"
                    " WHERE id = ? AND replayed_ms IS NULL",
                    (at_ms, rejection_id),
                ).rowcount
                == 1
            )

        return await self._db.write(apply)

    async def finish_replay(self, rejection_id: str, *, event_ids: tuple[str, ...] | None) -> None:
        params: tuple[Any, ...]
        if event_ids is None:
            sql = "UPDATE rejections SET replayed_ms = NULL, replayed_event_ids = NULL WHERE id = ?"
            params = (rejection_id,)
        else:
            sql = "UPDATE rejections SET replayed_event_ids = ? WHERE id = ?"
            params = (orjson.dumps(list(event_ids)).decode(), rejection_id)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._db.write(apply)
