"""A per-process copy of sources for the ingest hot path.

Reading a source on every request would cost a database round trip; the copy is trusted for a
short time (`EVENTSTITCH_SOURCE_CACHE_SECONDS`) and forgotten at once when this process changes a
source. Correctness does not rest on it: the writer re-checks each event's source inside the
commit, so an event for a source disabled in another process is refused, not stored.
"""

from __future__ import annotations

import time

from eventstitch.storage.interfaces import SourceRecord, Storage


class SourceCache:
    def __init__(self, storage: Storage, *, ttl_seconds: float) -> None:
        self._storage = storage
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, SourceRecord | None]] = {}

    async def get(self, source_id: str) -> SourceRecord | None:
        """The source, from the copy if fresh, else from storage (a miss is remembered too)."""
        now = time.monotonic()
        entry = self._entries.get(source_id)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        source = await self._storage.sources.get(source_id)
        if len(self._entries) > 10_000:  # unknown ids from scanners must not grow memory
            self._entries.clear()
        self._entries[source_id] = (now, source)
        return source

    def forget(self, source_id: str) -> None:
        self._entries.pop(source_id, None)
