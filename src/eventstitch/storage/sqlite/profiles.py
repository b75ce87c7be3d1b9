"""Profiles on SQLite: reads on the reader threads, erasure through the writer."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from eventstitch.identity.resolution import (
    PROFILE_HAPPENINGS,
    SYSTEM_SOURCE_ID,
    happenings_since,
    redacted,
)
from eventstitch.storage.records import Identifier, MergeRecord, ProfileRecord
from eventstitch.storage.sqlite.db import SqliteDb


def profile_row(conn: sqlite3.Connection, profile_id: str) -> ProfileRecord | None:
    row = conn.execute(
        "SELECT id, created_ms, updated_ms, traits, merged_into FROM profiles WHERE id = ?",
        (profile_id,),
    ).fetchone()
    if row is None:
        return None
    identifiers = tuple(
        (kind, value)
        for kind, value in conn.execute(
            "SELECT kind, value FROM identifiers WHERE profile_id = ? ORDER BY kind, value",
            (profile_id,),
        )
    )
    return ProfileRecord(row[0], row[1], row[2], orjson.loads(row[3]), row[4], identifiers)


class SqliteProfiles:
    """`ProfileStore` on SQLite."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def get(self, profile_id: str) -> ProfileRecord | None:
        return await self._db.read(lambda conn: profile_row(conn, profile_id))

    async def find(self, identifier: Identifier) -> ProfileRecord | None:
        def select(conn: sqlite3.Connection) -> ProfileRecord | None:
            row = conn.execute(
                "SELECT profile_id FROM identifiers WHERE kind = ? AND value = ?", identifier
            ).fetchone()
            return profile_row(conn, row[0]) if row else None

        return await self._db.read(select)

    async def merges(self, profile_id: str) -> list[MergeRecord]:
        def select(conn: sqlite3.Connection) -> list[MergeRecord]:
            rows = conn.execute(
                "SELECT survivor, merged, event_id, at_ms, refused_kind FROM profile_merges"
                " WHERE survivor = ? OR merged = ? ORDER BY id",
                (profile_id, profile_id),
            )
            return [MergeRecord(*row) for row in rows]

        return await self._db.read(select)

    async def list_page(self, *, limit: int, after_id: str | None) -> list[ProfileRecord]:
        def select(conn: sqlite3.Connection) -> list[ProfileRecord]:
            rows = conn.execute(
                "SELECT id FROM profiles WHERE id > ? ORDER BY id LIMIT ?", (after_id or "", limit)
            ).fetchall()
            found = [profile_row(conn, row[0]) for row in rows]
            return [p for p in found if p is not None]

        return await self._db.read(select)

    async def import_batch(self, profiles: list[ProfileRecord]) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            new = 0
            for p in profiles:
                new += conn.execute(
                    "INSERT INTO profiles (id, created_ms, updated_ms, traits, merged_into)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (
                        p.id,
                        p.created_ms,
                        p.updated_ms,
                        orjson.dumps(p.traits).decode(),
                        p.merged_into,
                    ),
                ).rowcount
                conn.executemany(
                    "INSERT INTO identifiers (kind, value, profile_id, created_ms)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (kind, value) DO NOTHING",
                    [(kind, value, p.id, p.created_ms) for kind, value in p.identifiers],
                )
            return new

        return await self._db.write(insert)

    async def erase(self, profile_id: str) -> tuple[int, int]:
        def remove(conn: sqlite3.Connection) -> tuple[int, int]:
            ids = [profile_id] + [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM profiles WHERE merged_into = ?", (profile_id,)
                )
            ]
            marks = ",".join("?" * len(ids))
            _redact_happenings(conn, ids)
            events = _erase_events(conn, f"profile_id IN ({marks})", ids)
            conn.execute(f"DELETE FROM identifiers WHERE profile_id IN ({marks})", ids)
            conn.execute(f"DELETE FROM sessions WHERE profile_id IN ({marks})", ids)
            conn.execute(
                f"DELETE FROM profile_merges WHERE survivor IN ({marks}) OR merged IN ({marks})",
                ids + ids,
            )
            profiles = conn.execute(f"DELETE FROM profiles WHERE id IN ({marks})", ids).rowcount
            return profiles, events

        return await self._db.write(remove)


def _erase_events(conn: sqlite3.Connection, where: str, params: list[Any]) -> int:
    """Delete events (the rollup triggers uncount them) and what they carried."""
    for table in ("event_identifiers", "event_traits"):
        conn.execute(
            f"DELETE FROM {table} WHERE event_id IN (SELECT id FROM events WHERE {where})",
            params,
        )
    return int(conn.execute(f"DELETE FROM events WHERE {where}", params).rowcount)


def _redact_happenings(conn: sqlite3.Connection, ids: list[str]) -> None:
    """Take erased profiles out of the system events that name them (see `redacted`)."""
    marks = ",".join("?" * len(ids))
    (oldest,) = conn.execute(
        f"SELECT MIN(created_ms) FROM profiles WHERE id IN ({marks})", ids
    ).fetchone()
    if oldest is None:
        return
    types = ",".join("?" * len(PROFILE_HAPPENINGS))
    found = conn.execute(
        "SELECT id, type, properties FROM events WHERE source_id = ? AND id >= ?"
        f" AND type IN ({types}) AND (json_extract(properties, '$.profile_id') IN ({marks})"
        f" OR json_extract(properties, '$.survivor') IN ({marks})"
        f" OR json_extract(properties, '$.merged') IN ({marks})"
        " OR EXISTS (SELECT 1 FROM json_each(properties, '$.profiles')"
        f" WHERE json_each.value IN ({marks})))",
        [SYSTEM_SOURCE_ID, happenings_since(oldest), *PROFILE_HAPPENINGS, *ids, *ids, *ids, *ids],
    ).fetchall()
    erased = set(ids)
    changes = []
    for event_id, event_type, text in found:
        properties = redacted(event_type, orjson.loads(text), erased)
        if properties is not None:
            changes.append((orjson.dumps(properties).decode(), event_id))
    conn.executemany("UPDATE events SET properties = ? WHERE id = ?", changes)
