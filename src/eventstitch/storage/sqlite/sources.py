"""Sources on SQLite; writes go through the writer so they serialise with events."""

from __future__ import annotations

import sqlite3
from typing import Any

from eventstitch.storage.errors import DuplicateSource
from eventstitch.storage.records import SourceRecord
from eventstitch.storage.shared.rows import (
    SOURCE_COLUMNS,
    source_changes,
    source_from_row,
    source_row,
    sources_after_sql,
)
from eventstitch.storage.sqlite.db import SqliteDb
from eventstitch.storage.sqlite.queries import SQLITE

_MARKS = ", ".join("?" * len(SOURCE_COLUMNS.split(", ")))
_INSERT = f"INSERT INTO sources ({SOURCE_COLUMNS}) VALUES ({_MARKS})"
_SELECT = f"SELECT {SOURCE_COLUMNS} FROM sources"


class SqliteSources:
    """`SourceStore` on SQLite."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create(self, source: SourceRecord) -> SourceRecord:
        row = source_row(SQLITE, source)

        def insert(conn: sqlite3.Connection) -> SourceRecord:
            try:
                conn.execute(_INSERT, row)
            except sqlite3.IntegrityError:
                raise DuplicateSource(source.id) from None
            return source

        return await self._db.write(insert)

    async def get(self, source_id: str) -> SourceRecord | None:
        def select(conn: sqlite3.Connection) -> SourceRecord | None:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (source_id,)).fetchone()
            return source_from_row(row) if row else None

        return await self._db.read(select)

    async def get_by_key(self, write_key: str) -> SourceRecord | None:
        def select(conn: sqlite3.Connection) -> SourceRecord | None:
            row = conn.execute(
                f"{_SELECT} WHERE write_key = ? UNION ALL {_SELECT} WHERE previous_write_key = ?"
                " LIMIT 1",
                (write_key, write_key),
            ).fetchone()
            return source_from_row(row) if row else None

        return await self._db.read(select)

    async def list_all(self) -> list[SourceRecord]:
        def select(conn: sqlite3.Connection) -> list[SourceRecord]:
            rows = conn.execute(f"{_SELECT} ORDER BY created_ms, id")
            return [source_from_row(row) for row in rows]

        return await self._db.read(select)

    async def list_page(self, *, limit: int, after: tuple[int, str] | None) -> list[SourceRecord]:
        where, params = sources_after_sql(SQLITE, after)

        def select(conn: sqlite3.Connection) -> list[SourceRecord]:
            rows = conn.execute(
                f"{_SELECT}{where} ORDER BY created_ms, id LIMIT ?", (*params, limit)
            )
            return [source_from_row(row) for row in rows]

        return await self._db.read(select)

    async def update(
        self, source_id: str, changes: dict[str, Any], updated_ms: int
    ) -> SourceRecord | None:
        values = source_changes(SQLITE, changes)

        def apply(conn: sqlite3.Connection) -> SourceRecord | None:
            assignments = ", ".join([f"{key} = ?" for key in values] + ["updated_ms = ?"])
            conn.execute(
                f"UPDATE sources SET {assignments} WHERE id = ?",
                (*values.values(), updated_ms, source_id),
            )
            row = conn.execute(f"{_SELECT} WHERE id = ?", (source_id,)).fetchone()
            return source_from_row(row) if row else None

        return await self._db.write(apply)

    async def delete(self, source_id: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM sources WHERE id = ?", (source_id,)).rowcount > 0

        return await self._db.write(remove)
