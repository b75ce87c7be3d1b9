"""The SQLite group-commit writer: one thread, one connection, one transaction per batch.

Requests hand their events to a bounded queue and await a future. The writer takes whatever is
waiting (up to the batch size), re-checks the sources, inserts the events and their rollup counts
in one `BEGIN IMMEDIATE` transaction, commits, and only then resolves the futures: one fsync
serves many requests, and no request is answered before its event is durable. Low-priority
writes (refused requests) wait in a lane of their own and run only when no event is queued.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from eventstitch import metrics
from eventstitch.identity.resolution import ClaimItem, Resolver
from eventstitch.ids import new_profile_id, now_ms
from eventstitch.storage.errors import (
    QueueFull,
    SourceRefused,
    StorageUnavailable,
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
    settle_from_thread,
)
from eventstitch.storage.sqlite import identity
from eventstitch.storage.sqlite import rows as event_rows
from eventstitch.storage.sqlite.deliveries import drop_duplicates, remember_deliveries
from eventstitch.storage.sqlite.owners import OwnerCache

log = logging.getLogger(__name__)


_IDLE_JOBS = 16  # low-priority writes waiting at most; their callers batch anyway


class SqliteWriter:
    """Owns the only write connection of this process and commits batches on its own thread."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        settings: StoreSettings,
    ) -> None:
        self._connect = connect
        # A deque rather than queue.Queue: appending and popping are single C calls, with no
        # lock and condition per item; the writer is woken only when it sleeps.
        self._pending: collections.deque[Any] = collections.deque()
        # Low-priority writes (refused requests): run alone, only when no event waits.
        self._idle: collections.deque[CallJob] = collections.deque()
        self._queue_size = settings.queue_size
        self._admit = threading.Lock()  # the size check and the append, as one step
        self._wake = threading.Event()
        self._sleeping = False
        self._batch_size = settings.batch_size
        self.batch_size = settings.batch_size
        self._single_valued = settings.single_valued
        self._system_events = settings.system_events
        self._window_ms = settings.idempotency_window_ms
        self._owners = OwnerCache()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        _shorten_switch_interval()
        self._thread = threading.Thread(target=self._run, name="eventstitch-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drain what is queued, then end the thread."""
        if self._thread is None:
            return
        with self._admit:
            self._pending.append(STOP)
        self._wake.set()
        self._thread.join()
        self._thread = None

    def depth(self) -> int:
        return len(self._pending)

    def submit_event(
        self,
        event: EventRecord,
        accepted_kinds: frozenset[str],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> asyncio.Future[Any]:
        # The row is built here, on the request's thread, where the event is still in the
        # CPU's cache: the writer then holds the GIL (and the event loop waits) only to bind.
        kinds = event_rows.kinds_param(accepted_kinds)
        row = (*event_rows.event_row(event), kinds)
        return self.submit_row(event, kinds, row, claim, delivery_key)

    def submit_row(
        self,
        event: EventRecord,
        kinds: str,
        row: tuple[Any, ...],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> asyncio.Future[Any]:
        """`submit_event` with the row already built (by a worker, for the writer process)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(EventJob(event, kinds, claim, delivery_key, future, row))
        return future

    def submit_group(
        self,
        items: list[tuple[EventRecord, Claim | None, str | None]],
        accepted_kinds: frozenset[str],
    ) -> list[asyncio.Future[Any]]:
        """Queue the events of one delivery as one item: the writer commits them in one
        transaction, never across two batches."""
        kinds = event_rows.kinds_param(accepted_kinds)
        rows = [(*event_rows.event_row(event), kinds) for event, _, _ in items]
        return self.submit_group_rows(items, kinds, rows)

    def submit_group_rows(
        self,
        items: list[tuple[EventRecord, Claim | None, str | None]],
        kinds: str,
        rows: list[tuple[Any, ...]],
    ) -> list[asyncio.Future[Any]]:
        """`submit_group` with the rows already built."""
        loop = asyncio.get_running_loop()
        jobs = group_jobs(
            [
                EventJob(event, kinds, claim, key, loop.create_future(), row)
                for (event, claim, key), row in zip(items, rows, strict=True)
            ]
        )
        with self._admit:
            if len(self._pending) + len(jobs) > self._queue_size:
                raise QueueFull("the write queue is full")
            self._pending.append(jobs)
        if self._sleeping:
            self._wake.set()
        return [job.future for job in jobs]

    def submit_call(self, call: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(CallJob(call, future))
        return future

    def submit_when_idle(self, call: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        """A write that waits until no event is queued, then commits in a transaction of its
        own: it never shares a batch with events, so it never delays one."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._admit:
            if len(self._idle) >= _IDLE_JOBS:
                raise QueueFull("too many low-priority writes are waiting")
            self._idle.append(CallJob(call, future))
        if self._sleeping:
            self._wake.set()
        return future

    def _submit(self, job: Job) -> None:
        with self._admit:
            if len(self._pending) >= self._queue_size:
                raise QueueFull("the write queue is full")
            self._pending.append(job)
        # The writer announces that it sleeps before it looks at the deque a last time, so
        # either it sees this job or it is told about it here.
        if self._sleeping:
            self._wake.set()

    def _run(self) -> None:
        conn = self._connect()
        pending = self._pending
        try:
            stopping = False
            while not stopping:
                if not pending:
                    if self._idle:
                        self._commit(conn, [self._idle.popleft()])
                        continue
                    self._sleeping = True
                    self._wake.clear()
                    if not pending and not self._idle:
                        self._wake.wait()
                    self._sleeping = False
                    continue
                batch: list[Job] = []
                while pending and len(batch) < self._batch_size:
                    if isinstance(pending[0], list):  # one delivery's events: never cut
                        if batch and len(batch) + len(pending[0]) > self._batch_size:
                            break
                        batch.extend(pending.popleft())
                        continue
                    item = pending.popleft()
                    if item is STOP:
                        stopping = True
                        break
                    batch.append(item)
                metrics.QUEUE_DEPTH.set(len(pending))
                if batch:
                    self._commit(conn, batch)
        finally:
            leftovers = list(self._idle)
            self._idle.clear()
            settle_from_thread(
                leftovers, [StorageUnavailable("storage is closing") for _ in leftovers]
            )
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        settle_from_thread(batch, self.commit_batch(conn, batch))

    def commit_batch(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Any]:
        """Commit one batch on `conn` (this writer's thread, or the writer process's loop);
        each job's result, or the exception its request gets."""
        started = time.perf_counter()
        results: list[Any] = [None] * len(batch)
        events = [(i, job) for i, job in enumerate(batch) if isinstance(job, EventJob)]
        calls = [(i, job) for i, job in enumerate(batch) if isinstance(job, CallJob)]
        try:
            keyed = any(job.delivery_key is not None for _, job in events)
            claimed = any(job.claim is not None for _, job in events)
            # A group's events must not be split by the owner cache's retry below.
            grouped = any(job.group for _, job in events)
            if not (calls or keyed or claimed):
                # The common case, events alone: one statement, which is its own durable
                # transaction. Each statement costs a round trip for the GIL, so one is best.
                written = event_rows.insert_checked(conn, events, results)
            else:
                known = None
                if not (calls or keyed or grouped):
                    known = self._owners.links((i, job.claim) for i, job in events)
                if known is not None:
                    # Events alone whose identifiers all belong to profiles known to this
                    # writer: one statement, like events without claims (see `OwnerCache`).
                    written = self._insert_known(conn, events, known, results)
                else:
                    written = self._commit_transaction(conn, events, calls, results)
        except Exception as exc:
            log.exception("commit of %d writes failed; none of them was stored", len(batch))
            failure = StorageUnavailable(f"the database refused the write: {exc}")
            results = [failure] * len(batch)
            written = 0
        if written:
            metrics.COMMIT_BATCH_SIZE.observe(written)
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        return results

    def _commit_transaction(
        self,
        conn: sqlite3.Connection,
        events: list[tuple[int, EventJob]],
        calls: list[tuple[int, CallJob]],
        results: list[Any],
    ) -> int:
        """Events with claims or delivery ids, or other writes: one explicit transaction."""
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcome = self._write_events(conn, events, results)
                if outcome is None:
                    # A source changed after identity was decided for its events: undo the
                    # decisions and decide again for the events that can be stored. Each turn
                    # leaves out at least one refused event, so this ends.
                    conn.execute("ROLLBACK")
                    events = [
                        (i, job)
                        for i, job in events
                        if not isinstance(results[i], SourceRefused | StorageUnavailable)
                    ]
                    continue
                for index, job in calls:
                    results[index] = _run_in_savepoint(conn, job.call)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            written, resolver = outcome
            # Only what was committed may be remembered: a rolled-back merge would otherwise
            # send later events to a profile that does not hold their identifier.
            if resolver is not None:
                self._owners.learn(resolver)
            return written

    def _write_events(
        self, conn: sqlite3.Connection, events: list[tuple[int, EventJob]], results: list[Any]
    ) -> tuple[int, Resolver | None] | None:
        """Write the batch's events inside the open transaction: how many were stored, and
        the decisions about their claims if any; None when an event with a claim was refused
        by the source check (the caller rolls back and tries again)."""
        keyed = [(i, job) for i, job in events if job.delivery_key is not None]
        if keyed:
            events = drop_duplicates(conn, events, keyed, results, window_ms=self._window_ms)
        claims = [
            (i, ClaimItem(job.event.id, job.event.received_ms, job.claim))
            for i, job in events
            if job.claim is not None
        ]
        resolver = None
        if claims:
            resolved = self._insert_resolved(conn, events, claims, results)
            if resolved is None:
                return None
            written, resolver = resolved
        else:
            written = event_rows.insert_checked(conn, events, results)
        if keyed:
            share_refusals(events, keyed, results)
            remember_deliveries(conn, keyed, results, window_ms=self._window_ms)
        return written, resolver

    def _insert_resolved(
        self,
        conn: sqlite3.Connection,
        events: list[tuple[int, EventJob]],
        claims: list[tuple[int, ClaimItem]],
        results: list[Any],
    ) -> tuple[int, Resolver] | None:
        """Decide who the events belong to first (see identity), then insert them already
        linked: fewer statements than inserting, then linking, and each statement costs the
        writer a turn for the GIL with the busy event loop. Returns how many were stored and
        the decisions; None when the source check refused one of them."""
        items = [item for _, item in claims]
        resolver = Resolver(single_valued=self._single_valued, new_profile_id=new_profile_id)
        plan = identity.decide(conn, items, resolver, unstored=True)
        now = now_ms()
        linked: dict[int, tuple[str, str]] = {}
        for index, item in claims:
            link = plan.links.get(item.event_id)
            if link is not None:
                kind, value = link.converted_by
                linked[index] = (plan.final(link.profile_id), f"{kind}:{value}")
        rows = [event_rows.linked_row(job.row, linked.get(index), now) for index, job in events]
        stored = event_rows.insert_rows(conn, event_rows.checked_linked_insert_sql(len(rows)), rows)
        if stored < len(events):
            event_rows.not_stored(event_rows.explain_refusals(conn, events, results), results)
            return None
        inserted = {item.event_id for item in items if item.event_id in plan.links}
        identity.apply(conn, resolver, now_ms=now, inserted=inserted)
        # Only the events left unlinked need what they carried remembered: a linked event is
        # never re-examined (the retroactive search looks at events without a profile).
        identity.store_event_identifiers(
            conn, [item for item in items if item.event_id not in inserted]
        )
        for index, _ in claims:
            results[index] = linked[index][0] if index in linked else None
        if self._system_events:
            event_rows.insert_events(conn, plan.system_events())
        return stored, resolver

    def _insert_known(
        self,
        conn: sqlite3.Connection,
        events: list[tuple[int, EventJob]],
        known: dict[int, tuple[str, str]],
        results: list[Any],
    ) -> int:
        """Insert events linked to the owners the cache names, in one statement that also
        checks each owner is still a live profile; events it leaves out for that reason go
        through the whole transaction (the cache was stale: another process merged or erased)."""
        now = now_ms()
        rows = [event_rows.linked_row(job.row, known.get(index), now) for index, job in events]
        stored = event_rows.insert_rows(conn, event_rows.checked_known_insert_sql(len(rows)), rows)
        retry = [] if stored == len(events) else event_rows.explain_refusals(conn, events, results)
        retried = {index for index, _ in retry}
        for index, _ in events:
            if index not in retried and not isinstance(results[index], BaseException):
                results[index] = known[index][0] if index in known else None
        if not retry:  # all went in, or only sources refused: the owners were right
            return stored
        self._owners.clear()
        try:
            return stored + self._commit_transaction(conn, retry, [], results)
        except Exception as exc:  # only the retried events failed; the others are stored
            log.exception("commit of %d writes failed; none of them was stored", len(retry))
            for index in retried:
                results[index] = StorageUnavailable(f"the database refused the write: {exc}")
            return stored


SWITCH_INTERVAL_S = 0.0002
"""How long a thread waiting for the GIL lets the running one go on (Python's default: 5 ms)."""


def _shorten_switch_interval() -> None:
    """The writer releases the GIL around each SQLite call and must take it back from the
    event loop, which is busy under load; at Python's default 5 ms a batch waited up to three
    such turns, and with it every request in the batch."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))


def _run_in_savepoint(conn: sqlite3.Connection, call: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run one write so that its failure undoes only itself, not the rest of the batch."""
    conn.execute("SAVEPOINT job")
    try:
        result = call(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return exc
    conn.execute("RELEASE job")
    return result
