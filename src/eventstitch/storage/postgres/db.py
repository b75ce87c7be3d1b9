"""The PostgreSQL database of one process: the read pool, the writer, the migrations. Stores
take this handle, never the storage object.

Writes go through `PostgresWriter` (group commit on one dedicated connection per process, an
asyncio task in the process's event loop). Reads and source changes use a small
`AsyncConnectionPool`; every read runs with `SET LOCAL statement_timeout`. Migrations run under
a transaction-level advisory lock, so processes starting at once apply each one exactly once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from eventstitch.storage.errors import QueryTimeout, StorageUnavailable
from eventstitch.storage.postgres.rows import Conn
from eventstitch.storage.postgres.writer import LOCK_IN_SCHEMA, PostgresWriter, WriteCall
from eventstitch.storage.shared.backend import StoreSettings
from eventstitch.storage.shared.migrations import discover, pending

T = TypeVar("T")

MIGRATION_LOCK = 1_163_067_392
"""The advisory lock (`writer.LOCK_IN_SCHEMA`) held while migrations are checked and
applied."""

_CONNECTION_DEFAULTS = {
    "application_name": "eventstitch",
    "connect_timeout": "10",
    # A peer that vanished without closing (a cable, a crashed host) is noticed in about a
    # minute instead of the kernel's two hours.
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


_QUOTED = re.compile(r'"[^"]*"')


def conninfo_from_url(url: str) -> str:
    """A libpq connection string for a postgresql:// or postgres:// URL, with our defaults
    for what the URL leaves out. Raises ValueError for a URL libpq cannot read."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        # libpq quotes the part it could not read, which may be a password: leave it out.
        raise ValueError(f"not a PostgreSQL URL: {_QUOTED.sub('...', str(exc))}") from None
    for key, value in _CONNECTION_DEFAULTS.items():
        params.setdefault(key, value)
    return make_conninfo("", **params)


def migrations() -> list[tuple[int, str]]:
    """The PostgreSQL migrations shipped in this package."""
    return discover("eventstitch.storage.postgres.migrations")


class PostgresDb:
    """One PostgreSQL database as this process sees it: a read pool and one writer."""

    def __init__(
        self,
        url: str,
        *,
        settings: StoreSettings,
        commit_timeout_s: float,
    ) -> None:
        self._conninfo = conninfo_from_url(url)
        self._query_timeout = str(settings.query_timeout_ms)
        self._readers = settings.readers
        self._commit_timeout = commit_timeout_s
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.writer = PostgresWriter(
            self._connect_writer,
            settings=settings,
            commit_timeout_s=commit_timeout_s + 5,
        )

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate, open the read pool and start the writer, all on the running event loop."""
        await self.migrate()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._readers,
            kwargs={"autocommit": True},
            open=False,
            name="eventstitch-read",
            timeout=10,  # waiting longer for a connection than a query may run is pointless
            reset=_out_of_pipeline,
        )
        try:
            await pool.open(wait=True, timeout=30)
            await self.writer.start()
        except BaseException as exc:
            await pool.close()  # whatever stopped the start, no connection is left open
            if isinstance(exc, psycopg.Error | PoolTimeout):
                raise StorageUnavailable(f"cannot reach the database: {exc}") from exc
            raise
        self._pool = pool
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        try:
            await self.writer.stop()
        finally:
            # Whatever stopped the writer's stop, the pool is closed: its worker tasks left
            # running swallow the cancellation an event loop's end sends them (psycopg_pool
            # catches CancelledError around its tasks) and that loop never ends.
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            self._loop = None

    async def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction under an advisory lock: processes that
        start at once wait for each other, and the later ones find nothing left to do."""
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot reach the database: {exc}") from exc
        async with conn, conn.transaction():
            await conn.execute(LOCK_IN_SCHEMA, (MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version integer PRIMARY KEY, applied_ms bigint NOT NULL)"
            )
            cursor = await conn.execute("SELECT version FROM schema_version")
            done = {row[0] for row in await cursor.fetchall()}
            applied = []
            for version, script in pending(migrations(), done):
                await conn.execute(script)  # no parameters: sent whole, many statements
                await conn.execute(
                    "INSERT INTO schema_version VALUES (%s, %s)",
                    (version, int(time.time() * 1000)),
                )
                applied.append(version)
        return applied

    def queue_depth(self) -> int:
        return self.writer.depth()

    # -- connections -----------------------------------------------------------------------
    async def _connect_writer(self) -> Conn:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            # The server stops a write stuck behind a lock before the writer gives up waiting.
            await conn.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (str(int(self._commit_timeout * 1000)),),
            )
        except BaseException:
            await conn.close()  # not left for the garbage collector to find open
            raise
        return conn

    # -- what the stores use ---------------------------------------------------------------
    async def home(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` on the event loop the store was started on. Connections and the writer
        belong to that loop; a caller on another loop (a second test client, a thread with its
        own loop) is served there, as SQLite's threads serve any loop."""
        home = self._loop
        if home is None or home is asyncio.get_running_loop():
            return await work()
        if home.is_closed() or not home.is_running():
            raise StorageUnavailable("the event loop this store was started on is not running")

        async def wrapped() -> T:
            return await work()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wrapped(), home))

    async def read(self, query: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `query` on a pooled connection, in a transaction with the query time limit.
        A connection that broke while pooled (server restart) is replaced and tried again."""
        return await self.home(lambda: self._read(query))

    async def _read(self, query: Callable[[Conn], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            try:
                return await self._read_once(query)
            except pg_errors.QueryCanceled as exc:
                raise QueryTimeout("the query ran past the time limit") from exc
            except psycopg.OperationalError as exc:
                if attempt == 2 or not _connection_lost(exc):
                    raise StorageUnavailable(f"the database could not be read: {exc}") from exc
            except PoolTimeout as exc:
                raise StorageUnavailable(f"no database connection: {exc}") from exc
        raise AssertionError("unreachable")

    async def _read_once(self, query: Callable[[Conn], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StorageUnavailable("storage is not started")
        # One round trip for BEGIN, the time limit and the query.
        async with self._pool.connection() as conn, conn.pipeline(), conn.transaction():
            await conn.execute(
                "SELECT set_config('statement_timeout', %s, true)", (self._query_timeout,)
            )
            return await query(conn)

    async def run(self, call: Callable[[Conn], Awaitable[T]]) -> T:
        """Run a write of its own (sources, import) in one transaction on a pooled connection."""
        return await self.home(lambda: self._run(call))

    async def _run(self, call: Callable[[Conn], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StorageUnavailable("storage is not started")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                return await call(conn)
        except pg_errors.UniqueViolation:
            raise
        except (psycopg.Error, PoolTimeout) as exc:
            raise StorageUnavailable(f"the database refused the write: {exc}") from exc

    async def write(self, call: WriteCall, *, identity: bool) -> Any:
        """Run `call` inside the writer's next transaction (with the identity lock held when
        `identity`) and return its result."""
        return await self.home(lambda: self.writer.submit_call(call, identity=identity))


async def _out_of_pipeline(conn: Conn) -> None:
    """The pool's check of every connection handed back: one still in pipeline mode is closed,
    not pooled. A read cancelled inside its pipeline (a client gone, a shutdown) hands its
    connection back that way, and the next user's statements would then not wait for their
    results: a DELETE's row count read -1, so a deleted source was reported missing."""
    if conn.pgconn.pipeline_status != pq.PipelineStatus.OFF:
        raise psycopg.InterfaceError("connection handed back in pipeline mode")


def _connection_lost(exc: psycopg.Error) -> bool:
    return isinstance(exc, pg_errors.AdminShutdown | pg_errors.CannotConnectNow) or (
        exc.sqlstate is None or exc.sqlstate.startswith("08")
    )
