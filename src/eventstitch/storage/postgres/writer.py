"""The PostgreSQL group-commit writer: one asyncio task, one dedicated connection per process.

Requests hand their events to a bounded queue and await a future. The writer takes whatever is
waiting (up to the batch size) and commits it: events alone in one statement that locks their
sources (FOR SHARE), inserts only the events whose source exists, is enabled and is of an
accepted kind, and counts them in the hourly rollup (a trigger); events with identity claims,
tracked visits and other writes in one explicit transaction. Only after the commit are the
futures resolved: no request is answered before its event is durable.

Several processes share one database: a source disabled by any of them is seen by the next
statement of every other (and one being disabled waits for the batches that hold its row), and
identity work takes one transaction-level advisory lock so that two processes never decide
about the same identifier at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from eventstitch import metrics
from eventstitch.identity.resolution import ClaimItem, Resolver
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.errors import (
    QueueFull,
    SourceRefused,
    StorageUnavailable,
)
from eventstitch.storage.postgres import identity
from eventstitch.storage.postgres.deliveries import claim_deliveries, release_refused
from eventstitch.storage.postgres.queries import pg_text
from eventstitch.storage.postgres.rows import (
    CHECKED_INSERT,
    Conn,
    event_arrays,
    insert_events,
)
from eventstitch.storage.records import Claim, EventRecord
from eventstitch.storage.shared.backend import StoreSettings
from eventstitch.storage.shared.deliveries import share_refusals
from eventstitch.storage.shared.jobs import (
    STOP,
    CallJob,
    EventJob,
    Job,
    group_jobs,
    settle_jobs,
    units,
)
from eventstitch.storage.shared.refusals import kinds_text, refusal

log = logging.getLogger(__name__)

WriteCall = Callable[[Conn], Awaitable[Any]]

LOCK_IN_SCHEMA = "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))"
"""A transaction-level advisory lock of this store: its key (an int4) with its schema's, as
advisory locks belong to the whole database. Stores in other schemas of one database (tests
running side by side, one database for several deployments) never wait on each other's."""
IDENTITY_LOCK = 1_163_067_393
"""The advisory lock (`LOCK_IN_SCHEMA`) held by every transaction that reads or writes
profiles."""


_RETRIES = 3  # a deadlock or serialisation failure rolled everything back: safe to retry


class _ConnectionLost(StorageUnavailable):
    """The writer's connection broke or could not be made; the batch is failed, not retried."""


class PostgresWriter:
    """Owns this process's write connection and commits batches on an asyncio task."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Conn]],
        *,
        settings: StoreSettings,
        commit_timeout_s: float = 30.0,
    ) -> None:
        self._connect = connect
        self._queue_size = settings.queue_size
        self._batch_size = settings.batch_size
        self._single_valued = settings.single_valued
        self._system_events = settings.system_events
        self._window_ms = settings.idempotency_window_ms
        self._commit_timeout = commit_timeout_s
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: Conn | None = None

    async def start(self) -> None:
        """Connect and start the writer task on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self._queue_size)
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="eventstitch-postgres-writer")

    async def stop(self) -> None:
        """Commit what is queued, then end the task and close the connection."""
        task, queue = self._task, self._queue
        if task is None or queue is None:
            return
        try:
            if not task.done():
                await queue.put(STOP)
                await task
        finally:
            # Whatever ended the task (or cancelled this wait), the connection is closed and
            # nothing queued is left waiting for an answer.
            self._task = None
            leftovers = []
            while not queue.empty():
                item = queue.get_nowait()
                if item is not STOP:
                    leftovers.append(item)
            settle_jobs(leftovers, [StorageUnavailable("storage is closing") for _ in leftovers])
            await self._drop()

    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def submit_event(
        self,
        event: EventRecord,
        accepted_kinds: frozenset[str],
        claim: Claim | None,
        delivery_key: str | None,
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        kinds = kinds_text(list(accepted_kinds))
        self._put(EventJob(event, kinds, claim, delivery_key, future))
        return future

    def submit_group(
        self,
        items: list[tuple[EventRecord, Claim | None, str | None]],
        accepted_kinds: frozenset[str],
    ) -> list[asyncio.Future[Any]]:
        """Queue the events of one delivery as one item: committed in one transaction."""
        loop = asyncio.get_running_loop()
        kinds = kinds_text(list(accepted_kinds))
        jobs = group_jobs(
            [
                EventJob(event, kinds, claim, key, loop.create_future())
                for event, claim, key in items
            ]
        )
        self._put(jobs)  # type: ignore[arg-type]
        return [job.future for job in jobs]

    def submit_call(self, call: WriteCall, *, identity: bool) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(CallJob(call, future, identity))
        return future

    def _put(self, job: Job) -> None:
        if self._queue is None or self._task is None or self._task.done():
            raise StorageUnavailable("storage is not started")
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull("the write queue is full") from None

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        carried: Any = None
        while True:
            first, carried = (carried, None) if carried is not None else (await queue.get(), None)
            if first is STOP:
                return
            batch: list[Job] = list(first) if isinstance(first, list) else [first]
            stopping = False
            while len(batch) < self._batch_size and not queue.empty():
                item = queue.get_nowait()
                if item is STOP:
                    stopping = True
                    break
                if isinstance(item, list):  # one delivery's events: never cut
                    if len(batch) + len(item) > self._batch_size:
                        carried = item
                        break
                    batch.extend(item)
                    continue
                batch.append(item)
            metrics.QUEUE_DEPTH.set(queue.qsize())
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                settle_jobs(batch, [StorageUnavailable("storage is closing") for _ in batch])
                raise
            if stopping:
                return

    async def _commit(self, batch: list[Job]) -> None:
        started = time.perf_counter()
        try:
            results, written = await self._attempt(batch)
        except _ConnectionLost as exc:
            log.warning("commit of %d writes failed: %s", len(batch), exc)
            results, written = [StorageUnavailable(str(exc)) for _ in batch], 0
        except Exception as exc:
            if len(batch) == 1:
                log.exception("a write failed; it was not stored")
                results = [StorageUnavailable(f"the database refused the write: {exc}")]
                written = 0
            else:  # one bad write must not sink the others: commit each on its own
                log.warning("commit of %d writes failed (%s); retrying one by one", len(batch), exc)
                results, written = [], 0
                for unit in units(batch):  # a delivery's events stay together
                    try:
                        one, count = await self._attempt(unit)
                    except Exception as single:
                        log.exception("a write failed; it was not stored")
                        failure = StorageUnavailable(f"the database refused it: {single}")
                        one, count = [failure] * len(unit), 0
                    results += one
                    written += count
        if written:
            metrics.COMMIT_BATCH_SIZE.observe(written)
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        settle_jobs(batch, results)

    async def _attempt(self, batch: list[Job]) -> tuple[list[Any], int]:
        """Write the batch on a live connection; a lost connection fails it (the commit may or
        may not have happened, so it is never replayed), a deadlock is retried."""
        for attempt in range(_RETRIES):
            conn = await self._connection()
            try:
                return await asyncio.wait_for(self._write(conn, batch), self._commit_timeout)
            except TimeoutError:
                await self._drop()
                raise _ConnectionLost("the database did not answer in time") from None
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if conn.broken or attempt == _RETRIES - 1:
                    raise
                log.info("write batch hit a deadlock; retrying")
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    await self._drop()
                    raise _ConnectionLost(f"lost the database connection: {exc}") from exc
                raise
        raise AssertionError("unreachable")

    async def _connection(self) -> Conn:
        """The writer's connection, replaced if it broke while idle (server restart, killed
        backend): a socket with something to read between batches is a closing one."""
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken or _readable(conn)):
            await self._drop()
            conn = None
        if conn is None:
            try:
                conn = self._conn = await self._connect()
            except psycopg.Error as exc:
                raise _ConnectionLost(f"cannot reach the database: {exc}") from exc
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # already gone
                await conn.close()

    async def _write(self, conn: Conn, batch: list[Job]) -> tuple[list[Any], int]:
        results: list[Any] = [None] * len(batch)
        events = [(i, job) for i, job in enumerate(batch) if isinstance(job, EventJob)]
        calls = [(i, job) for i, job in enumerate(batch) if isinstance(job, CallJob)]
        if not calls and all(j.claim is None and j.delivery_key is None for _, j in events):
            # The common case, events alone: one statement, which is its own transaction.
            return results, await _insert_checked(conn, events, results)
        async with conn.transaction():
            # Locks in one order everywhere: identity, delivery keys, sources, rollup rows.
            if any(job.claim is not None for _, job in events) or any(j.identity for _, j in calls):
                await conn.execute(LOCK_IN_SCHEMA, (IDENTITY_LOCK,))
            keyed = [(i, job) for i, job in events if job.delivery_key is not None]
            if keyed:
                events = await claim_deliveries(
                    conn, events, keyed, results, window_ms=self._window_ms
                )
            written = await _insert_checked(conn, events, results)
            if keyed:
                share_refusals(events, keyed, results)
                await release_refused(conn, keyed, results, window_ms=self._window_ms)
            claims = [
                (i, ClaimItem(job.event.id, job.event.received_ms, job.claim))
                for i, job in events
                if job.claim is not None and not isinstance(results[i], BaseException)
            ]
            if claims:
                await self._resolve_identity(conn, claims, results)
            for index, job in calls:
                try:
                    async with conn.transaction():  # a savepoint: a failure undoes only itself
                        results[index] = await job.call(conn)
                except Exception as exc:
                    if conn.broken or isinstance(exc, pg_errors.DeadlockDetected):
                        raise
                    if isinstance(exc, psycopg.Error):
                        log.exception("a write failed; it was not stored")
                        exc = StorageUnavailable(f"the database refused the write: {exc}")
                    results[index] = exc
        return results, written

    async def _resolve_identity(
        self, conn: Conn, claims: list[tuple[int, ClaimItem]], results: list[Any]
    ) -> None:
        """Link the batch's events to profiles inside the same transaction (see identity)."""
        items = [item for _, item in claims]
        await identity.store_event_identifiers(conn, items)
        resolver = Resolver(single_valued=self._single_valued, new_profile_id=new_profile_id)
        plan = await identity.resolve(conn, items, resolver, now_ms=now_ms())
        for index, item in claims:
            link = plan.links.get(item.event_id)
            results[index] = plan.final(link.profile_id) if link else None
        if self._system_events:
            await insert_events(conn, plan.system_events())


async def _insert_checked(
    conn: Conn, events: list[tuple[int, EventJob]], results: list[Any]
) -> int:
    """Insert the events whose source accepts them; mark the others refused in `results`."""
    if not events:
        return 0
    params = event_arrays([job.event for _, job in events])
    params.append([job.kinds for _, job in events])
    cursor = await conn.execute(CHECKED_INSERT, params)
    stored = {row[0] for row in await cursor.fetchall()}
    if len(stored) < len(events):
        await _explain_refusals(conn, events, stored, results)
    return len(stored)


async def _explain_refusals(
    conn: Conn, events: list[tuple[int, EventJob]], stored: set[str], results: list[Any]
) -> None:
    """Why the checked insert left some events out (the rare path)."""
    source_ids = list({pg_text(job.event.source_id) for _, job in events})
    cursor = await conn.execute(
        "SELECT id, kind, enabled FROM sources WHERE id = ANY(%s::text[])", (source_ids,)
    )
    sources = {row[0]: (row[1], bool(row[2])) for row in await cursor.fetchall()}
    for index, job in events:
        event = job.event
        if pg_text(event.id) in stored:
            continue
        source = sources.get(pg_text(event.source_id))
        # A source that takes it now was created by another process since the insert looked:
        # it did not exist then.
        refused = refusal(event.source_id, source, job.kinds)
        results[index] = refused or SourceRefused(event.source_id, "unknown_source")


def _readable(conn: Conn) -> bool:
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(ready)
