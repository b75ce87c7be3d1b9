"""Refused requests waiting in memory to be written: bounded, written in batches by one task.

A refusal must never slow an accepted event, and a flood of bad requests must not grow memory
or crowd the writer. So the request only appends its record here (or, when the buffer is full
by count or by bytes, drops it and counts the drop); one background task per process writes
what gathered every EVENTSTITCH_REJECTIONS_FLUSH_MS, in small batches, and waits while the
event writer's queue is more than half full.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading

from eventstitch import metrics
from eventstitch.config import Config
from eventstitch.ids import now_ms
from eventstitch.rejections.scrub import scrubbed
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import RejectionBounds, RejectionRecord, SourceRecord

log = logging.getLogger(__name__)

BATCH_ROWS = 200
BATCH_BYTES = 1 << 20
"""One write takes at most this much: on SQLite it runs on the writer's thread (when no event
is queued), so it is kept small enough not to hold up events that arrive meanwhile."""
PRUNE_SECONDS = 60.0
"""How often the age bound is applied when no refusal arrives to trigger a write."""
CLOSE_SECONDS = 20.0
"""Longest a closing server waits for its refused requests to be written (a query's own
limit is 10 s by default, a connection's 10 s more)."""
_OVERHEAD = 256  # bytes a record costs besides its variable parts (an estimate)


def weight(record: RejectionRecord) -> int:
    """The bytes a buffered record holds, near enough to bound memory by."""
    headers = sum(len(k) + len(v) for k, v in record.headers.items())
    return (
        _OVERHEAD
        + len(record.body or b"")
        + len(record.query)
        + len(record.path)
        + len(record.message)
        + headers
    )


class RejectionBuffer:
    """This process's refused requests on their way to the rejections table."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self._config = config
        self._storage = storage
        self._pending: collections.deque[tuple[RejectionRecord, int]] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()  # the size checks and the append, as one step
        self._lost: collections.Counter[str] = collections.Counter()
        """Drops not yet added to the stored totals (sent with the next write)."""
        self._wake: asyncio.Event | None = None
        self._writing: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        """Records of the write under way (lost if a closing gives up on it)."""
        self.peak = 0

    def depth(self) -> int:
        """Records waiting now."""
        return len(self._pending)

    def size_bytes(self) -> int:
        """Bytes waiting now (as `weight` counts them)."""
        return self._bytes

    def offer(self, record: RejectionRecord) -> bool:
        """Queue a record to be written; False (and counted) when the buffer is full."""
        size = weight(record)
        grew = False
        with self._lock:
            if (
                len(self._pending) >= self._config.rejections_buffer_size
                or self._bytes + size > self._config.rejections_buffer_bytes
            ):
                self._lost["buffer_full"] += 1
                full = True
            else:
                self._pending.append((record, size))
                self._bytes += size
                grew = len(self._pending) > self.peak
                self.peak = max(self.peak, len(self._pending))
                full = False
        if full:
            metrics.REJECTIONS_DROPPED.labels("buffer_full").inc()
            return False
        metrics.REJECTIONS_BUFFERED.set(len(self._pending))
        if grew:
            metrics.REJECTIONS_BUFFER_PEAK.set(self.peak)
        if self._wake is not None:
            self._wake.set()
        return True

    def lose(self, cause: str) -> None:
        """Count a refusal that could not even be captured (its record failed to build)."""
        with self._lock:
            self._lost[cause] += 1
        metrics.REJECTIONS_DROPPED.labels(cause).inc()

    def start(self) -> None:
        """Start the writing task on the running event loop."""
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="eventstitch-rejections")

    async def close(self) -> None:
        """Stop the task and write what is still waiting, within CLOSE_SECONDS. A write in
        progress is let finish: the task is stopped only between writes (cancelled inside one,
        its batch was lost, and on PostgreSQL its transaction could keep the rejections lock
        that the last flush then waited on). Past CLOSE_SECONDS the rest is given up, logged
        and counted as lost, so that a database that does not answer cannot hold a server's
        shutdown for ever (two test runs hung there, 120 s)."""
        try:
            await asyncio.wait_for(self._stop_and_flush(), CLOSE_SECONDS)
        except TimeoutError:
            with self._lock:
                left = len(self._pending) + self._in_flight  # the batch being written too
                self._pending.clear()
                self._bytes = 0
                self._in_flight = 0
            log.warning(
                "closing: refused requests not written within %s s; %d waiting are lost",
                CLOSE_SECONDS,
                left,
            )
            if left:
                metrics.REJECTIONS_DROPPED.labels("error").inc(left)

    async def _stop_and_flush(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            async with self._writing_lock():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.flush()

    async def flush(self, *, unless_busy: bool = False) -> None:
        """Write everything waiting now (a listing calls this so it shows this process's own
        latest refusals; `unless_busy`: not while events queue for the writer, which would
        keep the listing waiting). Failures are logged and counted, never raised."""
        if unless_busy and self._writer_busy():
            return
        async with self._writing_lock():
            # What waits now, and no more: refusals arriving meanwhile must not keep the
            # caller (a listing, a replay) waiting without end.
            with self._lock:
                left = len(self._pending)
            while True:
                batch = self._take(limit=left)
                left -= len(batch)
                if not batch and not self._lost:
                    return
                await self._write(batch)
                if not batch or left <= 0 or (unless_busy and self._writer_busy()):
                    return

    def _writing_lock(self) -> asyncio.Lock:
        """The lock every write holds (made on first use when the task was never started)."""
        if self._writing is None:
            self._writing = asyncio.Lock()
        return self._writing

    async def _run(self) -> None:
        assert self._wake is not None
        delay = self._config.rejections_flush_ms / 1000
        await self._prune()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), PRUNE_SECONDS)
            except TimeoutError:  # nothing came: apply the age bound all the same
                if not self._writer_busy():
                    await self._prune()
                continue
            self._wake.clear()
            await asyncio.sleep(delay)  # let a burst gather: one write serves all of it
            if self._writer_busy():  # events first: look again after the next interval
                self._wake.set()
                continue
            await self.flush()

    def _writer_busy(self) -> bool:
        """Whether events wait for the writer: then refusals wait for their turn."""
        return self._storage.queue_depth() > self._config.queue_size // 2

    async def _prune(self) -> None:
        async with self._writing_lock():
            await self._write([])

    def _take(self, limit: int = BATCH_ROWS) -> list[RejectionRecord]:
        batch: list[RejectionRecord] = []
        size = 0
        rows = min(limit, BATCH_ROWS)
        with self._lock:
            while self._pending and len(batch) < rows and size < BATCH_BYTES:
                record, weight_ = self._pending.popleft()
                batch.append(record)
                size += weight_
            self._bytes -= size
        metrics.REJECTIONS_BUFFERED.set(len(self._pending))
        return batch

    async def _scrub(self, batch: list[RejectionRecord]) -> list[RejectionRecord]:
        """Each record without its source's secrets, the sources read as they are now (the
        request may have been refused before its source was read, or it was not cached)."""
        sources: dict[str, SourceRecord | None] = {}
        for source_id in {r.source_id for r in batch if r.source_id}:
            sources[source_id] = await self._storage.sources.get(source_id)
        return [scrubbed(r, sources.get(r.source_id or "")) for r in batch]

    async def _write(self, batch: list[RejectionRecord]) -> None:
        with self._lock:
            lost = dict(self._lost)
            self._lost.clear()
        bounds = RejectionBounds(
            max_rows=self._config.rejections_max_rows,
            max_bytes=self._config.rejections_max_bytes,
            min_received_ms=now_ms() - self._config.rejections_max_age_seconds * 1000,
        )
        self._in_flight = len(batch)
        try:
            batch = await self._scrub(batch)
            deleted = await self._storage.rejections.add(batch, bounds=bounds, lost=lost)
        except Exception as exc:  # never raised to a request: the refusal was answered already
            self._in_flight = 0
            log.warning(
                "could not write %d refused requests (or apply the bounds): %s", len(batch), exc
            )
            with self._lock:
                self._lost.update(lost)
                if batch:
                    self._lost["error"] += len(batch)
            if batch:
                metrics.REJECTIONS_DROPPED.labels("error").inc(len(batch))
            return
        self._in_flight = 0  # (left as it is when cancelled: a closing that gave up counts it)
        if batch:
            metrics.REJECTIONS_RECORDED.inc(len(batch))
        for cause, n in deleted.items():
            if n:
                metrics.REJECTIONS_DROPPED.labels(cause).inc(n)
