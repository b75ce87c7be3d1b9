"""What every backend's `Storage` object shares: the settings it is tuned by, and starting,
closing and migrating its one database handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eventstitch.config import Config


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """The settings every backend takes: the writer's queue and batches, reads, identity."""

    queue_size: int = 10_000
    batch_size: int = 1000
    query_timeout_ms: int = 10_000
    readers: int = 4
    single_valued: frozenset[str] = frozenset({"user_id"})
    system_events: bool = True
    idempotency_window_ms: int = 86_400_000


def store_settings(config: Config) -> StoreSettings:
    """The settings every backend takes, from the configuration."""
    return StoreSettings(
        queue_size=config.queue_size,
        batch_size=config.batch_size,
        query_timeout_ms=config.query_timeout_ms,
        single_valued=config.identity_single_valued_kinds,
        system_events=config.system_events,
        idempotency_window_ms=config.idempotency_window_seconds * 1000,
    )


DEFAULT_SETTINGS = StoreSettings()
"""The settings a backend takes when given none (benchmarks, tools)."""


class DbHandle(Protocol):
    """The part of a backend's db handle its storage object drives."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> list[int]: ...

    def queue_depth(self) -> int: ...


class OnOneDb:
    """A storage object's lifecycle, which is its db handle's: subclasses set `db`."""

    db: DbHandle

    async def start(self) -> None:
        """Migrate, then open what reads and writes need (the writer, the readers)."""
        await self.db.start()

    async def close(self) -> None:
        await self.db.close()

    async def migrate(self) -> list[int]:
        return await self.db.migrate()

    def queue_depth(self) -> int:
        return self.db.queue_depth()
