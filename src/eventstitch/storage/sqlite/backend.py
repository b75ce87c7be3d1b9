"""The embedded backend: SQLite in WAL mode, one writer thread, read-only reader threads.

Writes go through `SqliteWriter` (group commit). Reads run on a small thread pool, each thread
with its own read-only connection, so a slow query never blocks the event loop or the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson

from eventstitch.identity.resolution import ClaimItem
from eventstitch.ids import now_ms
from eventstitch.storage.errors import DuplicateSource, QueryTimeout, StorageUnavailable
from eventstitch.storage.records import (
    Claim,
    CountQuery,
    CountResult,
    CountRow,
    EventFilter,
    EventRecord,
    SourceRecord,
    Visit,
    VisitResult,
)
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
from eventstitch.storage.sqlite.profiles import SqliteProfiles
from eventstitch.storage.sqlite.queries import count_sql, where_clause
from eventstitch.storage.sqlite.rejections import SqliteRejections
from eventstitch.storage.sqlite.rows import event_row
from eventstitch.storage.sqlite.visits import reclaim_stored, write_visit
from eventstitch.storage.sqlite.writer import SqliteWriter

T = TypeVar("T")

_EVENT_COLUMNS = (
    "id, type, source_id, received_ms, profile_less, profile_id, session_id, properties, context,"
    " converted_ms, converted_by"
)
_SOURCE_COLUMNS = (
    "id, name, kind, enabled, description, tags, created_ms, updated_ms, identification, traits,"
    " delivery_id_path, signature, rate_limit"
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


def path_from_url(url: str) -> Path:
    """`sqlite:///relative/path.db` or `sqlite:////absolute/path.db` to a file path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a SQLite file URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url[len(prefix) :])


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("eventstitch.storage.sqlite.migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script: str) -> list[str]:
    """A migration script split into complete statements (comments and all)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise ValueError(f"migration ends with an incomplete statement: {buffer[:80]!r}")
    return statements


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


def _json_or_null(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


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


class SqliteStorage:
    """`Storage` on one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        queue_size: int = 10_000,
        batch_size: int = 1000,
        query_timeout_ms: int = 10_000,
        readers: int = 4,
        single_valued: frozenset[str] = frozenset({"user_id"}),
        system_events: bool = True,
        idempotency_window_ms: int = 86_400_000,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._query_timeout = query_timeout_ms / 1000
        self.single_valued = single_valued
        self.system_events = system_events
        self._writer = SqliteWriter(
            self._connect_writer,
            queue_size=queue_size,
            batch_size=batch_size,
            single_valued=single_valued,
            system_events=system_events,
            idempotency_window_ms=idempotency_window_ms,
        )
        self._readers = readers
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.sources = SqliteSources(self)
        self.events = SqliteEvents(self)
        self.profiles = SqliteProfiles(self)
        self.rejections = SqliteRejections(self)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._migrate_now)
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="eventstitch-read")
        self._writer.start()

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            for conn in self._read_connections:
                conn.close()
            self._read_connections.clear()

    async def migrate(self) -> list[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(self._migrate_now)

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute("SELECT 1").fetchone())

    def queue_depth(self) -> int:
        return self._writer.depth()

    # -- connections -----------------------------------------------------------------------
    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._lock:
                self._read_connections.append(conn)
        return conn

    def _migrate_now(self) -> list[int]:
        """Apply pending migrations in one immediate transaction; safe when processes race."""
        conn = self._connect_writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version"
                    " (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
                applied = []
                for version, script in _migrations():
                    if version in done:
                        continue
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_version VALUES (?, ?)",
                        (version, int(time.time() * 1000)),
                    )
                    applied.append(version)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return applied
        finally:
            conn.close()

    # -- helpers for the stores -------------------------------------------------------------
    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader thread with the query time limit in force."""
        if self._pool is None:
            raise StorageUnavailable("storage is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read_with_deadline, query)

    def _read_with_deadline(self, query: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        deadline = time.monotonic() + self._query_timeout
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            return query(conn)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout("the query ran past the time limit") from exc
            raise StorageUnavailable(str(exc)) from exc
        finally:
            conn.set_progress_handler(None, 0)

    async def write(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """Run `call` inside the writer's next transaction and return its result."""
        result: T | BaseException = await self._writer.submit_call(call)
        if isinstance(result, BaseException):
            raise result
        return result

    async def write_when_idle(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """Run `call` in a transaction of its own once no event waits for the writer."""
        result: T | BaseException = await self._writer.submit_when_idle(call)
        if isinstance(result, BaseException):
            raise result
        return result


class SqliteSources:
    """Sources on SQLite; writes go through the writer so they serialise with events."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def create(self, source: SourceRecord) -> SourceRecord:
        def insert(conn: sqlite3.Connection) -> SourceRecord:
            try:
                conn.execute(
                    f"INSERT INTO sources ({_SOURCE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        source.id,
                        source.name,
                        source.kind,
                        int(source.enabled),
                        source.description,
                        orjson.dumps(list(source.tags)).decode(),
                        source.created_ms,
                        source.updated_ms,
                        orjson.dumps(rules_to_json(source.identification)).decode(),
                        orjson.dumps(traits_to_json(source.traits)).decode(),
                        ".".join(source.delivery_id_path),
                        _json_or_null(signature_to_json(source.signature)),
                        _json_or_null(rate_limit_to_json(source.rate_limit)),
                    ),
                )
            except sqlite3.IntegrityError:
                raise DuplicateSource(source.id) from None
            return source

        return await self._storage.write(insert)

    async def get(self, source_id: str) -> SourceRecord | None:
        def select(conn: sqlite3.Connection) -> SourceRecord | None:
            row = conn.execute(
                f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = ?", (source_id,)
            ).fetchone()
            return _source_from_row(row) if row else None

        return await self._storage.read(select)

    async def list_all(self) -> list[SourceRecord]:
        def select(conn: sqlite3.Connection) -> list[SourceRecord]:
            rows = conn.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY created_ms, id")
            return [_source_from_row(row) for row in rows]

        return await self._storage.read(select)

    async def update(
        self, source_id: str, changes: dict[str, Any], updated_ms: int
    ) -> SourceRecord | None:
        unknown = set(changes) - set(_SOURCE_FIELDS)
        if unknown:
            raise ValueError(f"not source fields: {sorted(unknown)}")
        values = {
            key: _json_or_null(source_field_to_json(key, v))
            if key in _JSON_SOURCE_FIELDS
            else (int(v) if key == "enabled" else source_field_to_json(key, v))
            for key, v in changes.items()
        }

        def apply(conn: sqlite3.Connection) -> SourceRecord | None:
            assignments = ", ".join([f"{key} = ?" for key in values] + ["updated_ms = ?"])
            conn.execute(
                f"UPDATE sources SET {assignments} WHERE id = ?",
                (*values.values(), updated_ms, source_id),
            )
            row = conn.execute(
                f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = ?", (source_id,)
            ).fetchone()
            return _source_from_row(row) if row else None

        return await self._storage.write(apply)

    async def delete(self, source_id: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM sources WHERE id = ?", (source_id,)).rowcount > 0

        return await self._storage.write(remove)


class SqliteEvents:
    """Events on SQLite: appended by group commit, read on reader threads."""

    def __init__(self, storage: SqliteStorage) -> None:
        self._storage = storage

    async def append(
        self,
        event: EventRecord,
        *,
        accepted_kinds: frozenset[str],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> str | None:
        result: str | None = await self._storage._writer.submit_event(
            event, accepted_kinds, claim, delivery_key
        )
        return result

    async def get(self, event_id: str) -> EventRecord | None:
        def select(conn: sqlite3.Connection) -> EventRecord | None:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)
            ).fetchone()
            return _event_from_row(row) if row else None

        return await self._storage.read(select)

    async def list_page(
        self, event_filter: EventFilter, *, limit: int, before_id: str | None
    ) -> list[EventRecord]:
        where, params = where_clause(event_filter, before_id=before_id)

        def select(conn: sqlite3.Connection) -> list[EventRecord]:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [_event_from_row(row) for row in rows]

        return await self._storage.read(select)

    async def count(self, event_filter: EventFilter, query: CountQuery) -> CountResult:
        sql, params, from_rollup = count_sql(event_filter, query)
        width = len(query.group_by)
        with_distinct = query.distinct is not None

        def select(conn: sqlite3.Connection) -> CountResult:
            result = CountResult(from_rollup=from_rollup)
            for row in conn.execute(sql, params):
                if width == 0 and row[0] is None:
                    break  # SUM over no rollup rows
                result.rows.append(
                    CountRow(
                        keys=tuple(row[:width]),
                        count=int(row[width]),
                        distinct=int(row[width + 1]) if with_distinct else None,
                    )
                )
            if len(result.rows) > query.max_rows:
                result.rows = result.rows[: query.max_rows]
                result.truncated = True
            total_sql, total_params, _ = count_sql(event_filter, CountQuery(group_by=()))
            total = conn.execute(total_sql, total_params).fetchone()[0]
            result.total = int(total or 0)
            return result

        return await self._storage.read(select)

    async def track(self, visit: Visit) -> VisitResult:
        storage = self._storage
        return await storage.write(
            lambda conn: write_visit(
                conn,
                visit,
                single_valued=storage.single_valued,
                system_events=storage.system_events,
            )
        )

    async def reclaim(
        self, items: list[tuple[str, int, Claim]], *, checkpoint: tuple[str, str | None]
    ) -> int:
        single_valued = self._storage.single_valued
        system_events = self._storage.system_events

        def apply(conn: sqlite3.Connection) -> int:
            claims = [ClaimItem(event_id, ms, claim) for event_id, ms, claim in items]
            linked = reclaim_stored(
                conn, claims, single_valued=single_valued, system_events=system_events
            )
            name, value = checkpoint
            if value is None:
                conn.execute("DELETE FROM checkpoints WHERE name = ?", (name,))
            else:
                conn.execute(
                    "INSERT INTO checkpoints (name, value, updated_ms) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                    " updated_ms = excluded.updated_ms",
                    (name, value, now_ms()),
                )
            return linked

        return await self._storage.write(apply)

    async def checkpoint(self, name: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
            return str(row[0]) if row else None

        return await self._storage.read(select)

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

        return await self._storage.write(insert)
