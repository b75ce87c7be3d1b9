"""`Storage` on one SQLite file: the stores, each on the one `SqliteDb` handle."""

from __future__ import annotations

from pathlib import Path

from eventstitch.storage.shared.backend import DEFAULT_SETTINGS, OnOneDb, StoreSettings
from eventstitch.storage.sqlite.db import SqliteDb
from eventstitch.storage.sqlite.events import SqliteEvents
from eventstitch.storage.sqlite.profiles import SqliteProfiles
from eventstitch.storage.sqlite.rejections import SqliteRejections
from eventstitch.storage.sqlite.sources import SqliteSources


class SqliteStorage(OnOneDb):
    """`Storage` on one SQLite file."""

    db: SqliteDb

    def __init__(
        self,
        path: Path,
        *,
        settings: StoreSettings = DEFAULT_SETTINGS,
        synchronous: str = "FULL",
        writer_socket: str | None = None,
    ) -> None:
        self.path = path
        self.db = SqliteDb(
            path, settings=settings, synchronous=synchronous, writer_socket=writer_socket
        )
        self.sources = SqliteSources(self.db)
        self.events = SqliteEvents(self.db, settings=settings)
        self.profiles = SqliteProfiles(self.db)
        self.rejections = SqliteRejections(self.db)

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute("SELECT 1").fetchone())
