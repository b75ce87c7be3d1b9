"""The per-process copy of sources under load: requests that find a source's copy stale at
the same moment share one read of storage, and a change made in this process still shows at
once; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from eventstitch.sources.cache import SourceCache
from eventstitch.storage import BACKENDS
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import SourceRecord
from tests.pg import backend_params
from tests.storage.conftest import Run, run, started_storage
from tests.storage.test_contract import source

__all__ = ["run"]  # the event-loop fixture of the storage suite


class CountedReads:
    """The real store's `sources`, counting the reads of one source by id."""

    def __init__(self, storage: Storage) -> None:
        self._sources = storage.sources
        self.reads = 0

    async def get(self, source_id: str) -> SourceRecord | None:
        self.reads += 1
        return await self._sources.get(source_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sources, name)


@pytest.mark.parametrize("backend", backend_params(BACKENDS))
def test_requests_that_find_the_copy_stale_together_read_the_source_once(
    backend: str, tmp_path: Path, run: Run
) -> None:
    with started_storage(backend, tmp_path, run) as storage:
        run(storage.sources.create(source("hooks")))
        counted = CountedReads(storage)
        storage.sources = counted  # type: ignore[misc]
        cache = SourceCache(storage, ttl_seconds=60)

        async def burst() -> list[SourceRecord | None]:
            return await asyncio.gather(*(cache.get("hooks") for _ in range(64)))

        found = run(burst())
        assert all(s is not None and s.id == "hooks" for s in found)
        assert counted.reads == 1

        # Disabled in this process while a read is under way: the next request does not take
        # the copy that read brings, it reads again and sees the change.
        async def change_during_read() -> SourceRecord | None:
            cache.forget("hooks")
            under_way = asyncio.ensure_future(cache.get("hooks"))
            await asyncio.sleep(0)
            await counted.update("hooks", {"enabled": False}, 2000)
            cache.forget("hooks")  # what the sources service does after a change
            await under_way
            return await cache.get("hooks")

        after = run(change_during_read())
        assert after is not None
        assert after.enabled is False
