"""Events on PostgreSQL: appended by group commit (writer.py), read on the pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from eventstitch.paths import has_each, values
from eventstitch.storage.errors import DuplicateDelivery
from eventstitch.storage.postgres.backfill import backfill_stored
from eventstitch.storage.postgres.db import PostgresDb
from eventstitch.storage.postgres.identity import pg_claim
from eventstitch.storage.postgres.queries import POSTGRES, count_sql, key_value, pg_text, value_at
from eventstitch.storage.postgres.rows import (
    EVENT_ARRAYS,
    EVENT_FIELDS,
    EVENT_VALUES,
    Conn,
    event_arrays,
)
from eventstitch.storage.postgres.visits import write_visit
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

_EVENT_COLUMNS = (
    "id, type, source_id, received_ms, profile_less, profile_id, session_id,"
    " COALESCE(properties_exact, properties::text), COALESCE(context_exact, context::text),"
    " converted_ms, converted_by"
)


_IMPORT = (
    f"INSERT INTO events ({EVENT_FIELDS}, converted_ms, converted_by)"
    f" SELECT {EVENT_VALUES}, b.converted_ms, b.converted_by"
    f" FROM unnest({EVENT_ARRAYS}, %s::int8[], %s::text[])"
    f" AS b({EVENT_FIELDS}, converted_ms, converted_by) ON CONFLICT (id) DO NOTHING"
)


def _json_text_at(payload: Any, path: PropertyPath) -> str | None:
    """The JSON text of the value at `path`, as `values_page` gives it; None when missing."""
    for value in values(payload, path):
        return orjson.dumps(value).decode()
    return None


class PostgresEvents:
    """`EventStore` on PostgreSQL."""

    def __init__(self, db: PostgresDb, *, settings: StoreSettings) -> None:
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
        # Queued for the writer's next batch (on the loop the store started on); answered once
        # committed.
        writer, safe = self._db.writer, pg_claim(claim)
        profile: str | None = await self._db.home(
            lambda: writer.submit_event(event, accepted_kinds, safe, delivery_key)
        )
        return profile

    async def append_group(
        self,
        items: Sequence[tuple[EventRecord, Claim | None, str | None]],
        *,
        accepted_kinds: frozenset[str],
    ) -> list[str | DuplicateDelivery | None]:
        writer = self._db.writer
        safe = [(event, pg_claim(claim), key) for event, claim, key in items]

        async def queued() -> list[str | DuplicateDelivery | None]:
            return await group_outcomes(writer.submit_group(safe, accepted_kinds))

        return await self._db.home(queued)

    async def get(self, event_id: str) -> EventRecord | None:
        async def select(conn: Conn) -> EventRecord | None:
            cursor = await conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = %s", (pg_text(event_id),)
            )
            row = await cursor.fetchone()
            return event_from_row(row) if row else None

        return await self._db.read(select)

    async def list_page(
        self, event_filter: EventFilter, *, limit: int, before_id: str | None
    ) -> list[EventRecord]:
        where, params = where_clause(POSTGRES, event_filter, before_id=before_id)

        async def select(conn: Conn) -> list[EventRecord]:
            cursor = await conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT %s",
                (*params, limit),
            )
            return [event_from_row(row) for row in await cursor.fetchall()]

        return await self._db.read(select)

    async def commit_span(
        self, event_filter: EventFilter, *, after: CommitPosition | None
    ) -> CommitSpan | None:
        # Ids are minted before commits that land out of their order, so the position is a
        # snapshot: the events committed since are those whose inserting transaction
        # (`inserted_xact`, not xmin, which an UPDATE changes) the last snapshot did not see.
        async def select(conn: Conn) -> CommitSpan:
            row = await (await conn.execute("SELECT pg_current_snapshot()::text")).fetchone()
            assert row is not None
            return after, str(row[0])

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
        before = None if resume is None else str(resume)
        xact = "inserted_xact::text::xid8"
        seen = f"(inserted_xact IS NULL OR pg_visible_in_snapshot({xact}, %s::pg_snapshot))"
        clauses, params = [seen], [str(span[1])]
        if span[0] is not None:  # and not seen then (events from before 0009 count as seen)
            # The first condition is what the BRIN index answers: none older than the
            # snapshot's oldest transaction in progress is new to it.
            clauses.append(
                "inserted_xact >= pg_snapshot_xmin(%s::pg_snapshot)::text::bigint"
                f" AND NOT pg_visible_in_snapshot({xact}, %s::pg_snapshot)"
            )
            params += [str(span[0]), str(span[0])]
        rows = await self._values(event_filter, paths, before, limit, (clauses, params))
        if rows is None:
            return None
        return rows, (rows[-1][0] if len(rows) == limit else None)

    async def values_page(
        self,
        event_filter: EventFilter,
        paths: Sequence[PropertyPath],
        *,
        limit: int,
        before_id: str | None,
    ) -> list[ValuesRow] | None:
        return await self._values(event_filter, paths, before_id, limit, ([], []))

    async def _values(
        self,
        event_filter: EventFilter,
        paths: Sequence[PropertyPath],
        before_id: str | None,
        limit: int,
        more: tuple[list[str], list[Any]],
    ) -> list[ValuesRow] | None:
        """`values_page`, with `more` clauses (and their parameters) narrowing it."""
        # jsonb renders a value the same way alone as inside its document, so `#>`'s text
        # parses to what the whole payload's text gives. Where jsonb would have changed the
        # payload, its exact text is kept beside it and the values are read from that. A key
        # with U+0000 is not in any jsonb document (see `pg_text`): such a path reads whole.
        if any(has_each(path) or any("\x00" in str(s) for s in path) for path in paths):
            return None
        where, params = where_clause(POSTGRES, event_filter, before_id=before_id)
        if more[0]:
            where += (" AND " if where else " WHERE ") + " AND ".join(more[0])
            params = [*params, *more[1]]
        taken = ""
        taken_params: list[Any] = []
        for path in paths:
            sql, path_params = value_at("properties", path)
            taken += f", ({sql})::text"
            taken_params += path_params

        async def select(conn: Conn) -> list[ValuesRow]:
            cursor = await conn.execute(
                f"SELECT id, type, source_id, received_ms, properties_exact{taken}"
                f" FROM events{where} ORDER BY id DESC LIMIT %s",
                (*taken_params, *params, limit),
            )
            rows: list[ValuesRow] = []
            for row in await cursor.fetchall():
                texts = tuple(row[5:])
                if row[4] is not None:
                    payload = orjson.loads(row[4])
                    texts = tuple(_json_text_at(payload, path) for path in paths)
                rows.append((row[0], row[1], row[2], row[3], texts))
            return rows

        return await self._db.read(select)

    async def count(self, event_filter: EventFilter, query: CountQuery) -> CountResult:
        sql, params, from_rollup = count_sql(event_filter, query)

        async def select(conn: Conn) -> CountResult:
            rows = await (await conn.execute(sql, params)).fetchall()
            result = count_result(rows, query, from_rollup=from_rollup, key=key_value)
            total = total_of_groups(result, query)
            if total is None:  # counted apart: some events are in several groups
                total_sql, total_params, _ = count_sql(event_filter, CountQuery(group_by=()))
                counted = await (await conn.execute(total_sql, total_params)).fetchone()
                total = counted[0] if counted else 0
            result.total = int(total or 0)
            return result

        return await self._db.read(select)

    async def track(self, visit: Visit) -> VisitResult:
        single_valued, system_events = self._single_valued, self._system_events
        claims = tuple(pg_claim(claim) for claim in visit.claims)
        visit = Visit(
            visit.source_id,
            visit.profile_less,
            visit.profile_hint,
            visit.session_hint,
            visit.events,
            claims,
        )
        result: VisitResult = await self._db.write(
            lambda conn: write_visit(
                conn,
                visit,
                single_valued=single_valued,
                system_events=system_events,
            ),
            # A visit with a profile reads and may create or follow profiles.
            identity=not visit.profile_less or any(c is not None for c in claims),
        )
        return result

    async def backfill(
        self, items: list[tuple[str, int, Claim]], *, checkpoint: tuple[str, str | None]
    ) -> int:
        single_valued, system_events = self._single_valued, self._system_events
        claims = []
        for event_id, ms, claim in items:
            safe = pg_claim(claim)
            assert safe is not None
            claims.append((event_id, ms, safe))
        result: int = await self._db.write(
            lambda conn: backfill_stored(
                conn,
                claims,
                checkpoint=checkpoint,
                single_valued=single_valued,
                system_events=system_events,
            ),
            identity=True,
        )
        return result

    async def checkpoint(self, name: str) -> str | None:
        async def select(conn: Conn) -> str | None:
            cursor = await conn.execute(
                "SELECT value FROM checkpoints WHERE name = %s", (pg_text(name),)
            )
            row = await cursor.fetchone()
            return str(row[0]) if row else None

        return await self._db.read(select)

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

        return await self._db.run(insert)
