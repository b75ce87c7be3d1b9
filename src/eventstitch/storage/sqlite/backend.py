"""`Storage` on one SQLite file: the stores, each on the one `SqliteDb` handle."""

from __future__ import annotations

from pathlib import Path

from eventstitch.storage.sqlite.db import SqliteDb
from eventstitch.storage.sqlite.events import SqliteEvents
from eventstitch.storage.sqlite.profiles import SqliteProfiles
from eventstitch.storage.sqlite.rejections import SqliteRejections
from eventstitch.storage.sqlite.sources import SqliteSources


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
        self.db = SqliteDb(
            path,
            synchronous=synchronous,
            queue_size=queue_size,
            batch_size=batch_size,
            query_timeout_ms=query_timeout_ms,
            readers=readers,
            single_valued=single_valued,
            system_events=system_events,
            idempotency_window_ms=idempotency_window_ms,
        )
        self.sources = SqliteSources(self.db)
        self.events = SqliteEvents(
            self.db, single_valued=single_valued, system_events=system_events
        )
        self.profiles = SqliteProfiles(self.db)
        self.rejections = SqliteRejections(self.db)

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def migrate(self) -> list[int]:
        return await self.db.migrate()

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute("SELECT 1").fetchone())

    def queue_depth(self) -> int:
        return self.db.queue_depth()
