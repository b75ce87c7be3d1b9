"""`Storage` on a PostgreSQL database: the stores, each on the one `PostgresDb` handle."""

from __future__ import annotations

from eventstitch.storage.postgres.db import PostgresDb
from eventstitch.storage.postgres.events import PostgresEvents
from eventstitch.storage.postgres.profiles import PostgresProfiles
from eventstitch.storage.postgres.rejections import PostgresRejections
from eventstitch.storage.postgres.sources import PostgresSources
from eventstitch.storage.shared.backend import DEFAULT_SETTINGS, OnOneDb, StoreSettings


class PostgresStorage(OnOneDb):
    """`Storage` on a PostgreSQL database (the schema is the URL's search_path, or public)."""

    db: PostgresDb

    def __init__(
        self,
        url: str,
        *,
        settings: StoreSettings = DEFAULT_SETTINGS,
        commit_timeout_s: float = 60.0,
    ) -> None:
        self.db = PostgresDb(url, settings=settings, commit_timeout_s=commit_timeout_s)
        self.sources = PostgresSources(self.db)
        self.events = PostgresEvents(self.db, settings=settings)
        self.profiles = PostgresProfiles(self.db)
        self.rejections = PostgresRejections(self.db)

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute("SELECT 1"))
