"""The SQLite database of one process: the writer's connection, read-only reader threads, and
the migrations. Stores take this handle, never the storage object.

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
from pathlib import Path
from typing import TypeVar

from eventstitch.files import private_dir, private_file
from eventstitch.storage.errors import QueryTimeout, StorageUnavailable
from eventstitch.storage.shared.backend import StoreSettings
from eventstitch.storage.shared.migrations import discover, pending
from eventstitch.storage.sqlite.writer import SqliteWriter
from eventstitch.storage.sqlite.writer_link import RemoteWriter

T = TypeVar("T")


_BUSY_TIMEOUT_MS = 10_000


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode, waiting out processes that start at the same moment.

    SQLite answers "database is locked" at once, without its busy wait, when a new file's
    journal mode is switched while another connection holds a lock on it; so two workers
    started together could fail. The switch is retried for as long as the busy wait lasts.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def path_from_url(url: str) -> Path:
    """`sqlite:///relative/path.db` or `sqlite:////absolute/path.db` to a file path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"not a SQLite file URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url[len(prefix) :])


def migrations() -> list[tuple[int, str]]:
    """The SQLite migrations shipped in this package."""
    return discover("eventstitch.storage.sqlite.migrations")


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


class SqliteDb:
    """One SQLite file: its writer thread, its reader threads, its migrations."""

    def __init__(
        self,
        path: Path,
        *,
        settings: StoreSettings,
        synchronous: str,
        writer_socket: str | None = None,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._query_timeout = settings.query_timeout_ms / 1000
        self.writer = SqliteWriter(
            self.connect_writer,
            settings=settings,
        )
        # Events go to the writer process when `serve` runs one; other writes stay here.
        self.event_writer: SqliteWriter | RemoteWriter = (
            RemoteWriter(writer_socket, queue_size=settings.queue_size)
            if writer_socket
            else self.writer
        )
        self._readers = settings.readers
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._prepare_files()
        await asyncio.to_thread(self._migrate_now)
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="eventstitch-read")
        self.writer.start()
        if isinstance(self.event_writer, RemoteWriter):
            await self.event_writer.start()

    async def close(self) -> None:
        if isinstance(self.event_writer, RemoteWriter):
            await self.event_writer.close()
        await asyncio.to_thread(self.writer.stop)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            for conn in self._read_connections:
                conn.close()
            self._read_connections.clear()

    async def migrate(self) -> list[int]:
        self._prepare_files()
        return await asyncio.to_thread(self._migrate_now)

    def _prepare_files(self) -> None:
        """The folder and the database owner-only before SQLite opens them: the database holds
        signing secrets, and SQLite gives its -wal and -shm the database file's mode."""
        private_dir(self.path.parent)
        private_file(self.path)
        for suffix in ("-wal", "-shm", "-journal"):
            companion = self.path.with_name(self.path.name + suffix)
            if companion.exists():  # left by an older version with the umask's mode
                private_file(companion)

    def queue_depth(self) -> int:
        return self.writer.depth() + (
            self.event_writer.depth() if self.event_writer is not self.writer else 0
        )

    # -- connections -----------------------------------------------------------------------
    def connect_writer(self) -> sqlite3.Connection:
        """A write connection: WAL, the busy wait, the configured durability."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        _switch_to_wal(conn)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            with self._lock:
                self._read_connections.append(conn)
        return conn

    def _migrate_now(self) -> list[int]:
        """Apply pending migrations in one immediate transaction; safe when processes race."""
        conn = self.connect_writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version"
                    " (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
                applied = []
                for version, script in pending(migrations(), done):
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

    # -- what the stores use ---------------------------------------------------------------
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
        result: T | BaseException = await self.writer.submit_call(call)
        if isinstance(result, BaseException):
            raise result
        return result

    async def write_when_idle(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """Run `call` in a transaction of its own once no event waits for the writer."""
        result: T | BaseException = await self.writer.submit_when_idle(call)
        if isinstance(result, BaseException):
            raise result
        return result
