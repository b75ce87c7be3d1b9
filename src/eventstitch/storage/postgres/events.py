"""Events on PostgreSQL: appended by group commit (postgres_writer), read on the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from eventstitch.identity.resolution import ClaimItem
from eventstitch.ids import now_ms
from eventstitch.storage.postgres.identity import pg_claim
from eventstitch.storage.postgres.queries import count_sql, key_value, pg_text, where_clause
from eventstitch.storage.postgres.rows import (
    EVENT_ARRAYS,
    EVENT_FIELDS,
    EVENT_VALUES,
    Conn,
    event_arrays,
)
from eventstitch.storage.postgres.visits import reclaim_stored, write_visit
from eventstitch.storage.records import (
    Claim,
    CountQuery,
    CountResult,
    CountRow,
    EventFilter,
    EventRecord,
    Visit,
    VisitResult,
)

if TYPE_CHECKING:
    from eventstitch.storage.postgres.backend import PostgresStorage

_EVENT_COLUMNS = (
    "id, type, source_id, received_ms, profile_less, profile_id, session_id,"
    " COALESCE(properties_exact, properties::text), COALESCE(context_exact, context::text),"
    " converted_ms, converted_by"
)


def _event_from_row(row: tuple[Any, ...]) -> EventRecord:
    return EventRecord(
        id=row[0],
        type=row[1],
        source_id=row[2],
        received_ms=row[3],
        profile_less=bool(row[4]),
        profile_id=row[5],
        session_id=row[6],
        properties=orjson.loads(row[7]),
        context=orjson.loads(row[8]),
        converted_ms=row[9],
        converted_by=row[10],
    )


_IMPORT = (
    f"INSERT INTO events ({EVENT_FIELDS}, converted_ms, converted_by)"
    f" SELECT {EVENT_VALUES}, b.converted_ms, b.converted_by"
    f" FROM unnest({EVENT_ARRAYS}, %s::int8[], %s::text[])"
    f" AS b({EVENT_FIELDS}, converted_ms, converted_by) ON CONFLICT (id) DO NOTHING"
)


class PostgresEvents:
    """`EventStore` on PostgreSQL."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    async def append(
        self,
        event: EventRecord,
        *,
        accepted_kinds: frozenset[str],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> str | None:
        writer, safe_claim = self._storage._writer, pg_claim(claim)
        result: str | None = await self._storage.home(
            lambda: writer.submit_event(event, accepted_kinds, safe_claim, delivery_key)
        )
        return result

    async def get(self, event_id: str) -> EventRecord | None:
        async def select(conn: Conn) -> EventRecord | None:
            cursor = await conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = %s", (pg_text(event_id),)
            )
            row = await cursor.fetchone()
            return _event_from_row(row) if row else None

        return await self._storage.read(select)

    async def list_page(
        self, event_filter: EventFilter, *, limit: int, before_id: str | None
    ) -> list[EventRecord]:
        where, params = where_clause(event_filter, before_id=before_id)

        async def select(conn: Conn) -> list[EventRecord]:
            cursor = await conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT %s",
                (*params, limit),
            )
            return [_event_from_row(row) for row in await cursor.fetchall()]

        return await self._storage.read(select)

    async def count(self, event_filter: EventFilter, query: CountQuery) -> CountResult:
        sql, params, from_rollup = count_sql(event_filter, query)
        total_sql, total_params, _ = count_sql(event_filter, CountQuery(group_by=()))
        width = len(query.group_by)
        with_distinct = query.distinct is not None

        async def select(conn: Conn) -> CountResult:
            result = CountResult(from_rollup=from_rollup)
            cursor = await conn.execute(sql, params)
            for row in await cursor.fetchall():
                if width == 0 and row[0] is None:
                    break  # SUM over no rollup rows
                result.rows.append(
                    CountRow(
                        keys=tuple(
                            key_value(group, key)
                            for group, key in zip(query.group_by, row[:width], strict=True)
                        ),
                        count=int(row[width]),
                        distinct=int(row[width + 1]) if with_distinct else None,
                    )
                )
            if len(result.rows) > query.max_rows:
                result.rows = result.rows[: query.max_rows]
                result.truncated = True
            cursor = await conn.execute(total_sql, total_params)
            total = await cursor.fetchone()
            result.total = int(total[0] or 0) if total else 0
            return result

        return await self._storage.read(select)

    async def track(self, visit: Visit) -> VisitResult:
        storage = self._storage
        claims = tuple(pg_claim(claim) for claim in visit.claims)
        visit = Visit(
            visit.source_id,
            visit.profile_less,
            visit.profile_hint,
            visit.session_hint,
            visit.events,
            claims,
        )
        result: VisitResult = await storage.write(
            lambda conn: write_visit(
                conn,
                visit,
                single_valued=storage.single_valued,
                system_events=storage.system_events,
            ),
            # A visit with a profile reads and may create or follow profiles.
            identity=not visit.profile_less or any(c is not None for c in claims),
        )
        return result

    async def reclaim(
        self, items: list[tuple[str, int, Claim]], *, checkpoint: tuple[str, str | None]
    ) -> int:
        single_valued = self._storage.single_valued
        system_events = self._storage.system_events
        claims = []
        for event_id, ms, claim in items:
            safe = pg_claim(claim)
            assert safe is not None
            claims.append(ClaimItem(event_id, ms, safe))

        async def apply(conn: Conn) -> int:
            linked = await reclaim_stored(
                conn, claims, single_valued=single_valued, system_events=system_events
            )
            name, value = checkpoint
            if value is None:
                await conn.execute("DELETE FROM checkpoints WHERE name = %s", (pg_text(name),))
            else:
                await conn.execute(
                    "INSERT INTO checkpoints (name, value, updated_ms) VALUES (%s, %s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                    " updated_ms = excluded.updated_ms",
                    (pg_text(name), pg_text(value), now_ms()),
                )
            return linked

        result: int = await self._storage.write(apply, identity=True)
        return result

    async def checkpoint(self, name: str) -> str | None:
        async def select(conn: Conn) -> str | None:
            cursor = await conn.execute(
                "SELECT value FROM checkpoints WHERE name = %s", (pg_text(name),)
            )
            row = await cursor.fetchone()
            return str(row[0]) if row else None

        return await self._storage.read(select)

    async def import_batch(self, events: list[EventRecord]) -> int:
        if not events:
            return 0
        params = event_arrays(events)
        params.append([e.converted_ms for e in events])
        params.append([None if e.converted_by is None else pg_text(e.converted_by) for e in events])

        async def insert(conn: Conn) -> int:
            # The rollup trigger counts exactly the rows that go in.
            cursor = await conn.execute(_IMPORT, params)
            return cursor.rowcount

        return await self._storage.run(insert)
