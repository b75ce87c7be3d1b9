"""Sources on PostgreSQL: each change is its own transaction on the pool, seen by the next write
statement of every process (and a change waits for the batches that hold the source's row)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from psycopg import errors as pg_errors

from eventstitch.storage.errors import DuplicateSource
from eventstitch.storage.postgres.queries import pg_text
from eventstitch.storage.postgres.rows import Conn, jsonb_text
from eventstitch.storage.records import SourceRecord
from eventstitch.storage.shared.codec import (
    rate_limit_from_json,
    rate_limit_to_json,
    rules_from_json,
    rules_to_json,
    signature_from_json,
    signature_to_json,
    source_field_to_json,
    traits_from_json,
    traits_to_json,
)

if TYPE_CHECKING:
    from eventstitch.storage.postgres.backend import PostgresStorage

_SOURCE_COLUMNS = (
    "id, name, kind, enabled, description, tags::text, created_ms, updated_ms,"
    " identification::text, traits::text, delivery_id_path, signature::text, rate_limit::text"
)
_SOURCE_INSERT = (
    "INSERT INTO sources (id, name, kind, enabled, description, tags, created_ms, updated_ms,"
    " identification, traits, delivery_id_path, signature, rate_limit)"
    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, %s::jsonb, %s, %s::jsonb,"
    " %s::jsonb)"
)
_SOURCE_FIELDS = (
    "name",
    "kind",
    "enabled",
    "description",
    "tags",
    "identification",
    "traits",
    "delivery_id_path",
    "signature",
    "rate_limit",
)
_JSON_SOURCE_FIELDS = ("tags", "identification", "traits", "signature", "rate_limit")


def _source_from_row(row: tuple[Any, ...]) -> SourceRecord:
    return SourceRecord(
        id=row[0],
        name=row[1],
        kind=row[2],
        enabled=bool(row[3]),
        description=row[4],
        tags=tuple(orjson.loads(row[5])),
        created_ms=row[6],
        updated_ms=row[7],
        identification=rules_from_json(orjson.loads(row[8])),
        traits=traits_from_json(orjson.loads(row[9])),
        delivery_id_path=tuple(row[10].split(".")) if row[10] else (),
        signature=signature_from_json(orjson.loads(row[11])) if row[11] else None,
        rate_limit=rate_limit_from_json(orjson.loads(row[12])) if row[12] else None,
    )


def _jsonb_or_null(value: Any) -> str | None:
    return None if value is None else jsonb_text(value)


def _pg_value(value: Any) -> Any:
    return pg_text(value) if isinstance(value, str) else value


class PostgresSources:
    """`SourceStore` on PostgreSQL."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def create(self, source: SourceRecord) -> SourceRecord:
        async def insert(conn: Conn) -> SourceRecord:
            await conn.execute(
                _SOURCE_INSERT,
                (
                    pg_text(source.id),
                    pg_text(source.name),
                    source.kind,
                    source.enabled,
                    pg_text(source.description),
                    jsonb_text(list(source.tags)),
                    source.created_ms,
                    source.updated_ms,
                    jsonb_text(rules_to_json(source.identification)),
                    jsonb_text(traits_to_json(source.traits)),
                    pg_text(".".join(source.delivery_id_path)),
                    _jsonb_or_null(signature_to_json(source.signature)),
                    _jsonb_or_null(rate_limit_to_json(source.rate_limit)),
                ),
            )
            return source

        try:
            return await self._storage.run(insert)
        except pg_errors.UniqueViolation:
            raise DuplicateSource(source.id) from None

    async def get(self, source_id: str) -> SourceRecord | None:
        async def select(conn: Conn) -> SourceRecord | None:
            cursor = await conn.execute(
                f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = %s", (pg_text(source_id),)
            )
            row = await cursor.fetchone()
            return _source_from_row(row) if row else None

        return await self._storage.read(select)

    async def list_all(self) -> list[SourceRecord]:
        async def select(conn: Conn) -> list[SourceRecord]:
            cursor = await conn.execute(
                f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY created_ms, id"
            )
            return [_source_from_row(row) for row in await cursor.fetchall()]

        return await self._storage.read(select)

    async def update(
        self, source_id: str, changes: dict[str, Any], updated_ms: int
    ) -> SourceRecord | None:
        unknown = set(changes) - set(_SOURCE_FIELDS)
        if unknown:
            raise ValueError(f"not source fields: {sorted(unknown)}")
        assignments = [
            f"{key} = %s::jsonb" if key in _JSON_SOURCE_FIELDS else f"{key} = %s" for key in changes
        ]
        values = [
            _jsonb_or_null(source_field_to_json(key, v))
            if key in _JSON_SOURCE_FIELDS
            else _pg_value(source_field_to_json(key, v))
            for key, v in changes.items()
        ]

        async def apply(conn: Conn) -> SourceRecord | None:
            cursor = await conn.execute(
                f"UPDATE sources SET {', '.join([*assignments, 'updated_ms = %s'])}"
                f" WHERE id = %s RETURNING {_SOURCE_COLUMNS}",
                (*values, updated_ms, pg_text(source_id)),
            )
            row = await cursor.fetchone()
            return _source_from_row(row) if row else None

        return await self._storage.run(apply)

    async def delete(self, source_id: str) -> bool:
        async def remove(conn: Conn) -> bool:
            cursor = await conn.execute("DELETE FROM sources WHERE id = %s", (pg_text(source_id),))
            return cursor.rowcount > 0

        return await self._storage.run(remove)
