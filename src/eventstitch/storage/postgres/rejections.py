"""Rejections on PostgreSQL: each write is one transaction on the pool, never on the writer's
connection, so recording refusals takes nothing from the event writer.

Writes from several processes take one advisory lock, so their deletions of the oldest rows
cannot deadlock and every deleted row is counted once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from eventstitch.ids import id_floor
from eventstitch.storage.postgres.db import PostgresDb
from eventstitch.storage.postgres.queries import POSTGRES, pg_text
from eventstitch.storage.postgres.rows import Conn
from eventstitch.storage.postgres.writer import LOCK_IN_SCHEMA
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

REJECTIONS_LOCK = 1_163_067_394
"""The advisory lock (`writer.LOCK_IN_SCHEMA`) held by every write that adds or deletes
rejections."""

_INSERT = insert_sql(POSTGRES)
_OVER_BYTES = over_bytes_sql(POSTGRES)
_ADD_DROPS = add_drops_sql(POSTGRES)


def _pg_row(r: RejectionRecord) -> tuple[Any, ...]:
    """`rejection_row` with every text made storable (U+0000 is refused by PostgreSQL)."""
    row = list(rejection_row(r))
    row[15] = r.body_truncated
    return tuple(pg_text(v) if isinstance(v, str) else v for v in row)


class PostgresRejections:
    """`RejectionStore` on PostgreSQL."""

    def __init__(self, db: PostgresDb) -> None:
        self._db = db

    async def add(
        self,
        rejections: Sequence[RejectionRecord],
        *,
        bounds: RejectionBounds,
        lost: Mapping[str, int],
    ) -> dict[str, int]:
        rows = [_pg_row(r) for r in rejections]
        oldest = id_floor(bounds.min_received_ms)

        async def apply(conn: Conn) -> dict[str, int]:
            await conn.execute(LOCK_IN_SCHEMA, (REJECTIONS_LOCK,))
            if rows:
                async with conn.cursor() as cursor:
                    await cursor.executemany(_INSERT, rows)
            aged = (await conn.execute("DELETE FROM rejections WHERE id < %s", (oldest,))).rowcount
            over = (
                await conn.execute(
                    "DELETE FROM rejections WHERE id IN"
                    " (SELECT id FROM rejections ORDER BY id DESC OFFSET %s)",
                    (bounds.max_rows,),
                )
            ).rowcount
            heavy = (await conn.execute(_OVER_BYTES, (bounds.max_bytes,))).rowcount
            deleted = {"max_age": aged, "max_rows": over, "max_bytes": heavy}
            drops = drop_totals(lost, deleted)
            if drops:
                async with conn.cursor() as cursor:
                    await cursor.executemany(_ADD_DROPS, drops)
            return deleted

        return await self._db.run(apply)

    async def get(self, rejection_id: str) -> RejectionRecord | None:
        async def select(conn: Conn) -> RejectionRecord | None:
            cursor = await conn.execute(
                f"SELECT {COLUMNS} FROM rejections WHERE id = %s", (pg_text(rejection_id),)
            )
            row = await cursor.fetchone()
            return rejection_from_row(row) if row else None

        return await self._db.read(select)

    async def list_page(
        self, rejection_filter: RejectionFilter, *, limit: int, before_id: str | None
    ) -> list[RejectionRecord]:
        where, params = filter_sql(POSTGRES, rejection_filter, before_id)

        async def select(conn: Conn) -> list[RejectionRecord]:
            cursor = await conn.execute(
                f"SELECT {LIST_COLUMNS} FROM rejections{where} ORDER BY id DESC LIMIT %s",
                (*params, limit),
            )
            return [rejection_from_row(row) for row in await cursor.fetchall()]

        return await self._db.read(select)

    async def dropped(self) -> dict[str, int]:
        async def select(conn: Conn) -> dict[str, int]:
            cursor = await conn.execute("SELECT cause, total FROM rejection_drops ORDER BY cause")
            return {row[0]: int(row[1]) for row in await cursor.fetchall()}

        return await self._db.read(select)

    async def claim_replay(self, rejection_id: str, *, at_ms: int) -> bool:
        async def apply(conn: Conn) -> bool:
            cursor = await conn.execute(
                "UPDATE rejections SET replayed_ms = %s, replayed_event_ids = '[]'"
                " WHERE id = %s AND replayed_ms IS NULL",
                (at_ms, pg_text(rejection_id)),
            )
            return cursor.rowcount == 1

        return await self._db.run(apply)

    async def finish_replay(self, rejection_id: str, *, event_ids: tuple[str, ...] | None) -> None:
        params: tuple[Any, ...]
        if event_ids is None:
            sql = (
                "UPDATE rejections SET replayed_ms = NULL, replayed_event_ids = NULL WHERE id = %s"
            )
            params = (pg_text(rejection_id),)
        else:
            sql = "UPDATE rejections SET replayed_event_ids = %s WHERE id = %s"
            params = (orjson.dumps(list(event_ids)).decode(), pg_text(rejection_id))

        async def apply(conn: Conn) -> None:
            await conn.execute(sql, params)

        await self._db.run(apply)
