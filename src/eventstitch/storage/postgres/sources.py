"""Sources on PostgreSQL: each change is its own transaction on the pool, seen by the next write
statement of every process (and a change waits for the batches that hold the source's row)."""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors

from eventstitch.storage.errors import DuplicateSource
from eventstitch.storage.postgres.db import PostgresDb
from eventstitch.storage.postgres.queries import POSTGRES, pg_text
from eventstitch.storage.postgres.rows import Conn
from eventstitch.storage.records import SourceRecord
from eventstitch.storage.shared.rows import (
    JSON_SOURCE_FIELDS,
    SOURCE_COLUMNS,
    source_changes,
    source_from_row,
    source_row,
    sources_after_sql,
)

_JSON_COLUMNS = ", ".join(
    f"{c}::text" if c in JSON_SOURCE_FIELDS else c for c in SOURCE_COLUMNS.split(", ")
)
_INSERT = (
    f"INSERT INTO sources ({SOURCE_COLUMNS}) VALUES ("
    + ", ".join(
        "%s::jsonb" if c in JSON_SOURCE_FIELDS else "%s" for c in SOURCE_COLUMNS.split(", ")
    )
    + ")"
)
_SELECT = f"SELECT {_JSON_COLUMNS} FROM sources"


class PostgresSources:
    """`SourceStore` on PostgreSQL."""

    def __init__(self, db: PostgresDb) -> None:
        self._db = db

    async def create(self, source: SourceRecord) -> SourceRecord:
        row = source_row(POSTGRES, source)

        async def insert(conn: Conn) -> SourceRecord:
            await conn.execute(_INSERT, row)
            return source

        try:
            return await self._db.run(insert)
        except pg_errors.UniqueViolation:
            raise DuplicateSource(source.id) from None

    async def get(self, source_id: str) -> SourceRecord | None:
        async def select(conn: Conn) -> SourceRecord | None:
            cursor = await conn.execute(f"{_SELECT} WHERE id = %s", (pg_text(source_id),))
            row = await cursor.fetchone()
            return source_from_row(row) if row else None

        return await self._db.read(select)

    async def get_by_key(self, write_key: str) -> SourceRecord | None:
        async def select(conn: Conn) -> SourceRecord | None:
            cursor = await conn.execute(
                f"({_SELECT} WHERE write_key = %s) UNION ALL"
                f" ({_SELECT} WHERE previous_write_key = %s) LIMIT 1",
                (pg_text(write_key), pg_text(write_key)),
            )
            row = await cursor.fetchone()
            return source_from_row(row) if row else None

        return await self._db.read(select)

    async def list_all(self) -> list[SourceRecord]:
        async def select(conn: Conn) -> list[SourceRecord]:
            cursor = await conn.execute(f"{_SELECT} ORDER BY created_ms, id")
            return [source_from_row(row) for row in await cursor.fetchall()]

        return await self._db.read(select)

    async def list_page(self, *, limit: int, after: tuple[int, str] | None) -> list[SourceRecord]:
        where, params = sources_after_sql(POSTGRES, after)

        async def select(conn: Conn) -> list[SourceRecord]:
            cursor = await conn.execute(
                f"{_SELECT}{where} ORDER BY created_ms, id LIMIT %s", (*params, limit)
            )
            return [source_from_row(row) for row in await cursor.fetchall()]

        return await self._db.read(select)

    async def update(
        self, source_id: str, changes: dict[str, Any], updated_ms: int
    ) -> SourceRecord | None:
        values = source_changes(POSTGRES, changes)
        assignments = [
            f"{key} = %s::jsonb" if key in JSON_SOURCE_FIELDS else f"{key} = %s" for key in values
        ]

        async def apply(conn: Conn) -> SourceRecord | None:
            cursor = await conn.execute(
                f"UPDATE sources SET {', '.join([*assignments, 'updated_ms = %s'])}"
                f" WHERE id = %s RETURNING {_JSON_COLUMNS}",
                (*values.values(), updated_ms, pg_text(source_id)),
            )
            row = await cursor.fetchone()
            return source_from_row(row) if row else None

        return await self._db.run(apply)

    async def delete(self, source_id: str) -> bool:
        async def remove(conn: Conn) -> bool:
            cursor = await conn.execute("DELETE FROM sources WHERE id = %s", (pg_text(source_id),))
            return cursor.rowcount > 0

        return await self._db.run(remove)
