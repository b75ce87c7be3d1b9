"""Profiles on PostgreSQL: reads on the pool, erasure through the writer (identity lock held)."""

from __future__ import annotations

import orjson

from eventstitch.identity.resolution import (
    PROFILE_HAPPENINGS,
    SYSTEM_SOURCE_ID,
    happenings_since,
    redacted,
)
from eventstitch.storage.postgres.db import PostgresDb
from eventstitch.storage.postgres.queries import pg_text
from eventstitch.storage.postgres.rows import Conn, columns
from eventstitch.storage.records import Identifier, MergeRecord, ProfileRecord


async def profile_row(conn: Conn, profile_id: str) -> ProfileRecord | None:
    cursor = await conn.execute(
        "SELECT id, created_ms, updated_ms, traits::text, merged_into FROM profiles WHERE id = %s",
        (pg_text(profile_id),),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute(
        "SELECT kind, value FROM identifiers WHERE profile_id = %s ORDER BY kind, value",
        (row[0],),
    )
    identifiers = tuple((kind, value) for kind, value in await cursor.fetchall())
    return ProfileRecord(row[0], row[1], row[2], orjson.loads(row[3]), row[4], identifiers)


class PostgresProfiles:
    """`ProfileStore` on PostgreSQL."""

    def __init__(self, db: PostgresDb) -> None:
        self._db = db

    async def get(self, profile_id: str) -> ProfileRecord | None:
        return await self._db.read(lambda conn: profile_row(conn, profile_id))

    async def find(self, identifier: Identifier) -> ProfileRecord | None:
        async def select(conn: Conn) -> ProfileRecord | None:
            cursor = await conn.execute(
                "SELECT profile_id FROM identifiers WHERE kind = %s AND value = %s",
                (pg_text(identifier[0]), pg_text(identifier[1])),
            )
            row = await cursor.fetchone()
            return await profile_row(conn, row[0]) if row else None

        return await self._db.read(select)

    async def merges(self, profile_id: str) -> list[MergeRecord]:
        async def select(conn: Conn) -> list[MergeRecord]:
            cursor = await conn.execute(
                "SELECT survivor, merged, event_id, at_ms, refused_kind FROM profile_merges"
                " WHERE survivor = %s OR merged = %s ORDER BY id",
                (pg_text(profile_id), pg_text(profile_id)),
            )
            return [MergeRecord(*row) for row in await cursor.fetchall()]

        return await self._db.read(select)

    async def list_page(self, *, limit: int, after_id: str | None) -> list[ProfileRecord]:
        async def select(conn: Conn) -> list[ProfileRecord]:
            cursor = await conn.execute(
                "SELECT id FROM profiles WHERE id > %s ORDER BY id LIMIT %s",
                (pg_text(after_id or ""), limit),
            )
            found = [await profile_row(conn, row[0]) for row in await cursor.fetchall()]
            return [p for p in found if p is not None]

        return await self._db.read(select)

    async def import_batch(self, profiles: list[ProfileRecord]) -> int:
        async def insert(conn: Conn) -> int:
            new = 0
            for p in profiles:
                cursor = await conn.execute(
                    "INSERT INTO profiles (id, created_ms, updated_ms, traits, merged_into)"
                    " VALUES (%s, %s, %s, %s::jsonb, %s) ON CONFLICT (id) DO NOTHING",
                    (
                        pg_text(p.id),
                        p.created_ms,
                        p.updated_ms,
                        orjson.dumps(p.traits).decode(),
                        p.merged_into,
                    ),
                )
                new += cursor.rowcount
                for kind, value in p.identifiers:
                    await conn.execute(
                        "INSERT INTO identifiers (kind, value, profile_id, created_ms)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT (kind, value) DO NOTHING",
                        (pg_text(kind), pg_text(value), pg_text(p.id), p.created_ms),
                    )
            return new

        result: int = await self._db.write(insert, identity=True)
        return result

    async def erase(self, profile_id: str) -> tuple[int, int]:
        async def remove(conn: Conn) -> tuple[int, int]:
            cursor = await conn.execute(
                "SELECT id FROM profiles WHERE merged_into = %s", (pg_text(profile_id),)
            )
            ids = [pg_text(profile_id)] + [row[0] for row in await cursor.fetchall()]
            await _redact_happenings(conn, ids)
            # The rollup trigger uncounts the deleted events.
            for table in ("event_identifiers", "event_traits"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE event_id IN"
                    " (SELECT id FROM events WHERE profile_id = ANY(%s::text[]))",
                    (ids,),
                )
            cursor = await conn.execute(
                "DELETE FROM events WHERE profile_id = ANY(%s::text[])", (ids,)
            )
            events = cursor.rowcount
            for statement in (
                "DELETE FROM identifiers WHERE profile_id = ANY(%s::text[])",
                "DELETE FROM sessions WHERE profile_id = ANY(%s::text[])",
            ):
                await conn.execute(statement, (ids,))
            await conn.execute(
                "DELETE FROM profile_merges"
                " WHERE survivor = ANY(%s::text[]) OR merged = ANY(%s::text[])",
                (ids, ids),
            )
            cursor = await conn.execute("DELETE FROM profiles WHERE id = ANY(%s::text[])", (ids,))
            return cursor.rowcount, events

        result: tuple[int, int] = await self._db.write(remove, identity=True)
        return result


async def _redact_happenings(conn: Conn, ids: list[str]) -> None:
    """Take erased profiles out of the system events that name them (see `redacted`)."""
    cursor = await conn.execute(
        "SELECT MIN(created_ms) FROM profiles WHERE id = ANY(%s::text[])", (ids,)
    )
    row = await cursor.fetchone()
    if row is None or row[0] is None:
        return
    cursor = await conn.execute(
        "SELECT id, type, properties::text FROM events WHERE source_id = %s AND id >= %s"
        " AND type = ANY(%s::text[]) AND (properties->>'profile_id' = ANY(%s::text[])"
        " OR properties->>'survivor' = ANY(%s::text[]) OR properties->>'merged' = ANY(%s::text[])"
        " OR (jsonb_typeof(properties->'profiles') = 'array'"
        " AND properties->'profiles' ?| %s::text[]))",
        (SYSTEM_SOURCE_ID, happenings_since(row[0]), list(PROFILE_HAPPENINGS), ids, ids, ids, ids),
    )
    erased = set(ids)
    changes = []
    for event_id, event_type, text in await cursor.fetchall():
        properties = redacted(event_type, orjson.loads(text), erased)
        if properties is not None:
            changes.append((event_id, orjson.dumps(properties).decode()))
    if changes:
        await conn.execute(
            "UPDATE events SET properties = u.properties::jsonb, properties_exact = NULL"
            " FROM unnest(%s::text[], %s::text[]) AS u(id, properties) WHERE events.id = u.id",
            columns(changes, 2),
        )
