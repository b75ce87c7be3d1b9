"""`Storage` on a PostgreSQL database: the stores, each on the one `PostgresDb` handle."""

from __future__ import annotations

from eventstitch.storage.postgres.db import PostgresDb
from eventstitch.storage.postgres.events import PostgresEvents
from eventstitch.storage.postgres.profiles import PostgresProfiles
from eventstitch.storage.postgres.rejections import PostgresRejections
from eventstitch.storage.postgres.sources import PostgresSources


class PostgresStorage:
    """`Storage` on a PostgreSQL database (the schema is the URL's search_path, or public)."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 10_000,
        batch_size: int = 1000,
        query_timeout_ms: int = 10_000,
        readers: int = 4,
        commit_timeout_s: float = 60.0,
        single_valued: frozenset[str] = frozenset({"user_id"}),
        system_events: bool = True,
        idempotency_window_ms: int = 86_400_000,
    ) -> None:
        self.db = PostgresDb(
            url,
            queue_size=queue_size,
            batch_size=batch_size,
            query_timeout_ms=query_timeout_ms,
            readers=readers,
            commit_timeout_s=commit_timeout_s,
            single_valued=single_valued,
            system_events=system_events,
            idempotency_window_ms=idempotency_window_ms,
        )
        self.sources = PostgresSources(self.db)
        self.events = PostgresEvents(
            self.db, single_valued=single_valued, system_events=system_events
        )
        self.profiles = PostgresProfiles(self.db)
        self.rejections = PostgresRejections(self.db)

    async def start(self) -> None:
        """Migrate, open the read pool and start the writer, all on the running event loop."""
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def migrate(self) -> list[int]:
        return await self.db.migrate()

    async def ping(self) -> None:
        await self.db.read(lambda conn: conn.execute("SELECT 1"))

    def queue_depth(self) -> int:
        return self.db.queue_depth()
