"""A per-process copy of sources for the ingest hot path, and each source's rate-limit bucket.

Reading a source on every request would cost a database round trip; the copy is trusted for a
short time (`EVENTSTITCH_SOURCE_CACHE_SECONDS`) and forgotten at once when this process changes a
source. Correctness does not rest on it: the writer re-checks each event's source inside the
commit, so an event for a source disabled in another process is refused, not stored.

Buckets live here because their lifetime is a source's: one per existing, limited source, kept
across re-reads of the copy, dropped when the source is gone or no longer limited. They are per
process: with N workers a source may get up to N times its limit (documented).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict

from eventstitch.config import MAX_RATE_BURST, MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import RateLimit, SourceRecord


class TokenBucket:
    """`burst` requests at once, refilled at `rate` a second. Only the event loop's thread
    touches it and `take` never awaits, so it needs no lock."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate

    def change(self, rate: float, burst: int, now: float) -> None:
        """Apply a changed limit: what was earned at the old rate is kept, up to the new burst."""
        self.tokens = min(self.tokens + (now - self.stamp) * self.rate, float(burst))
        self.stamp = now
        self.rate = rate
        self.burst = burst


def effective_limit(limit: RateLimit | None, default: RateLimit) -> tuple[float, int] | None:
    """(rate, burst) in force for a source, or None when it is unlimited. A stored limit
    outside what the API accepts (written by an older version, or imported) is held to the
    bounds, so the arithmetic stays finite and the source keeps working."""
    chosen = default if limit is None else limit
    if not chosen.per_second > 0:  # NaN too: no usable rate is no limit
        return None
    rate = min(max(chosen.per_second, MIN_RATE_PER_SECOND), MAX_RATE_PER_SECOND)
    burst = min(chosen.burst, MAX_RATE_BURST) if chosen.burst > 0 else max(1, math.ceil(rate))
    return rate, burst


class _Bounded:
    """A least-recently-used map bounded in entries and in (estimated) bytes."""

    __slots__ = ("_bytes", "_entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, SourceRecord | None, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> tuple[float, SourceRecord | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0], entry[1]

    def put(self, key: str, stamp: float, source: SourceRecord | None) -> None:
        self.pop(key)
        size = _ENTRY_OVERHEAD + len(key) + (len(repr(source)) if source is not None else 0)
        if size > self.max_bytes:
            return  # larger than the whole bound: read through, never held
        self._entries[key] = (stamp, source, size)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def pop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


_ENTRY_OVERHEAD = 200
"""Bytes an entry costs besides its id and source (dict slot, tuple, float: an estimate)."""


class SourceCache:
    """Sources by id as this process last read them, misses (unknown ids) apart so that a
    scanner's junk ids cannot push real sources out; each map is bounded in entries and bytes,
    and the buckets in entries. Ids reach it only once checked against the source id pattern
    (`sources.service.get_accepting`), so a key is at most 64 characters."""

    def __init__(
        self,
        storage: Storage,
        *,
        ttl_seconds: float,
        default_limit: RateLimit | None = None,
        max_entries: int = 10_000,
        max_bytes: int = 8 << 20,
    ) -> None:
        self._storage = storage
        self._ttl = ttl_seconds
        self._default = default_limit or RateLimit(per_second=0)
        self._found = _Bounded(max_entries, max_bytes)
        self._missing = _Bounded(max_entries, max_bytes)
        self._keys = _Bounded(max_entries, max_bytes)
        """Write key to the source found for it (or None), as last read: the source itself
        is then read through `get`, whose copy a change in this process forgets."""
        self._max_buckets = max_entries
        self._reading: dict[str, asyncio.Future[SourceRecord | None]] = {}
        self._generation = 0
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Entries and estimated bytes held now, by map (buckets: entries only)."""
        return {
            "sources": (len(self._found), self._found.size_bytes()),
            "misses": (len(self._missing), self._missing.size_bytes()),
            "keys": (len(self._keys), self._keys.size_bytes()),
            "buckets": (len(self._buckets), 0),
        }

    async def get(self, source_id: str) -> SourceRecord | None:
        """The source, from the copy if fresh, else from storage (a miss is remembered too).
        Requests that find the copy stale together share one read: under load every request
        in flight when the copy expires would otherwise read the source on its own."""
        now = time.monotonic()
        entry = self._found.get(source_id) or self._missing.get(source_id)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        reading = self._reading.get(source_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(source_id, now))
            self._reading[source_id] = reading
            reading.add_done_callback(lambda done: self._read_done(source_id, done))
        # Shielded: a request that goes away does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    def _read_done(self, source_id: str, done: asyncio.Future[SourceRecord | None]) -> None:
        if self._reading.get(source_id) is done:
            del self._reading[source_id]
        if not done.cancelled():
            done.exception()  # retrieved: each waiter got it already

    async def _read(self, source_id: str, now: float) -> SourceRecord | None:
        generation = self._generation
        source = await self._storage.sources.get(source_id)
        if generation != self._generation:
            return source  # a change in this process since the read began: not kept
        if source is None:
            self._found.pop(source_id)
            self._missing.put(source_id, now, None)
        else:
            self._missing.pop(source_id)
            self._found.put(source_id, now, source)
        self._refresh_bucket(source_id, source, now)
        return source

    async def get_by_key(self, write_key: str) -> SourceRecord | None:
        """The source a write key names (its current or previous key), from the copy if
        fresh. The caller checks the key against the source returned: a rotation done in this
        process shows at once through `get`, one done elsewhere within the copy's time."""
        now = time.monotonic()
        entry = self._keys.get(write_key)
        if entry is not None and now - entry[0] < self._ttl:
            return None if entry[1] is None else await self.get(entry[1].id)
        source = await self._storage.sources.get_by_key(write_key)
        self._keys.put(write_key, now, source)
        if source is not None:
            self._missing.pop(source.id)
            self._found.put(source.id, now, source)
            self._refresh_bucket(source.id, source, now)
        return source

    def peek(self, source_id: str) -> SourceRecord | None:
        """The copy held of a source, fresh or not, without reading storage."""
        entry = self._found.get(source_id)
        return entry[1] if entry is not None else None

    def bucket(self, source_id: str) -> TokenBucket | None:
        """The rate-limit bucket of a source read through `get`, or None when unlimited."""
        return self._buckets.get(source_id)

    def forget(self, source_id: str) -> None:
        # The bucket stays: a changed limit is applied to it on the next read, and dropping it
        # would hand a fresh burst to a source on every change.
        self._generation += 1
        self._reading.pop(source_id, None)  # a read begun before the change: not shared
        self._found.pop(source_id)
        self._missing.pop(source_id)
        # Keys are not indexed by source: a change is rare, so every key is read again.
        self._keys.clear()

    def _refresh_bucket(self, source_id: str, source: SourceRecord | None, now: float) -> None:
        limit = effective_limit(source.rate_limit, self._default) if source else None
        if limit is None:
            self._buckets.pop(source_id, None)
            return
        bucket = self._buckets.get(source_id)
        if bucket is None:
            self._buckets[source_id] = TokenBucket(limit[0], limit[1], now)
            if len(self._buckets) > self._max_buckets:
                # The least recently read source's bucket goes; read again, it starts full.
                self._buckets.popitem(last=False)
            return
        self._buckets.move_to_end(source_id)
        if bucket.rate != limit[0] or bucket.burst != limit[1]:
            bucket.change(limit[0], limit[1], now)
