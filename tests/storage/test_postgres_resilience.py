"""What only a server database does: connections die under the store, a query waits on a
lock, the server is not there. The store answers each with its documented error, never hangs,
and carries on by itself once the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstitch.ids import new_event_id
from eventstitch.storage import open_storage
from eventstitch.storage.errors import QueryTimeout, StorageUnavailable
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import EventFilter, EventRecord, SourceRecord
from tests.conftest import free_port, make_config
from tests.pg import fresh_database_url, require_postgres, server_url
from tests.storage.conftest import Run

pytestmark = pytest.mark.postgres

WEBHOOK = frozenset({"webhook"})


def event(n: int) -> EventRecord:
    event_id, received_ms = new_event_id()
    return EventRecord(event_id, "order", "hooks", received_ms, True, None, None, {"n": n}, {})


@pytest.fixture
def app_name() -> str:
    """A connection name of this test's own, so that it can end its store's sessions only."""
    return f"eventstitch-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def database_url(app_name: str) -> Iterator[str]:
    with fresh_database_url() as url:
        yield f"{url}&application_name={app_name}"


@pytest.fixture
def store(tmp_path: Path, run: Run, database_url: str) -> Iterator[Storage]:
    storage = open_storage(make_config(tmp_path / "data", database_url=database_url))
    run(storage.start())
    source = SourceRecord("hooks", "Hooks", "webhook", True, "", (), 1000, 1000)
    run(storage.sources.create(source))
    try:
        yield storage
    finally:
        run(storage.close())


def admin(statement: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(server_url(), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def kill_sessions(app_name: str) -> int:
    """End every session of the store under test, as a server restart would."""
    ended = admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        app_name,
    )
    time.sleep(0.2)  # let the ended backends close their sockets
    return len(ended)


def test_the_store_carries_on_after_its_sessions_are_ended(
    store: Storage, run: Run, app_name: str
) -> None:
    first = event(1)
    run(store.events.append(first, accepted_kinds=WEBHOOK))
    assert kill_sessions(app_name) >= 2  # the writer's and at least one reader's
    second = event(2)
    run(store.events.append(second, accepted_kinds=WEBHOOK))
    page = run(store.events.list_page(EventFilter(), limit=10, before_id=None))
    assert [e.id for e in page] == [second.id, first.id]
    run(store.ping())


def test_a_write_whose_session_dies_mid_commit_fails_and_the_next_one_is_stored(
    store: Storage, run: Run, app_name: str, database_url: str
) -> None:
    import psycopg

    blocked = event(1)
    with psycopg.connect(database_url, application_name="eventstitch-test-locker") as locker:
        # Hold the source's row, so that the writer's batch waits inside its statement.
        locker.execute("SELECT 1 FROM sources WHERE id = 'hooks' FOR UPDATE")

        async def append_then_kill() -> BaseException | None:
            pending = asyncio.ensure_future(store.events.append(blocked, accepted_kinds=WEBHOOK))
            await asyncio.sleep(0.5)
            assert not pending.done()  # waiting on the lock, not failed
            await asyncio.to_thread(kill_sessions, app_name)
            try:
                await asyncio.wait_for(pending, timeout=10)
            except StorageUnavailable as exc:
                return exc
            return None

        assert isinstance(run(append_then_kill()), StorageUnavailable)
        locker.rollback()
    assert run(store.events.get(blocked.id)) is None
    stored = event(2)
    run(store.events.append(stored, accepted_kinds=WEBHOOK))
    assert run(store.events.get(stored.id)) == stored


def test_a_query_held_up_past_the_time_limit_is_stopped(
    tmp_path: Path, run: Run, database_url: str
) -> None:
    import psycopg

    config = make_config(tmp_path / "data", database_url=database_url, query_timeout_ms=300)
    storage = open_storage(config)
    run(storage.start())
    try:
        with psycopg.connect(database_url, application_name="eventstitch-test-locker") as locker:
            locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(QueryTimeout):
                run(storage.events.list_page(EventFilter(), limit=10, before_id=None))
            assert time.monotonic() - started < 5
            locker.rollback()
        assert run(storage.events.list_page(EventFilter(), limit=10, before_id=None)) == []
    finally:
        run(storage.close())


def test_an_unreachable_server_fails_start_at_once(tmp_path: Path, run: Run) -> None:
    require_postgres()
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    storage = open_storage(make_config(tmp_path / "data", database_url=url))
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        run(storage.start())
    assert time.monotonic() - started < 15


def sessions(app_name: str) -> int:
    return len(admin("SELECT pid FROM pg_stat_activity WHERE application_name = %s", app_name))


def test_a_start_refused_by_the_server_leaves_no_session_open(
    run: Run, app_name: str, database_url: str
) -> None:
    # A commit time limit past what `statement_timeout` takes: the server refuses the writer's
    # session setting, after the read pool and the writer's connection are open.
    from eventstitch.storage.postgres.backend import PostgresStorage

    storage = PostgresStorage(database_url, commit_timeout_s=10.0**10)
    with pytest.raises(StorageUnavailable) as refused:
        run(storage.start())
    assert "statement_timeout" in str(refused.value)
    # Asked while the refusal (and everything its frames hold) is still alive: a connection
    # only the garbage collector would close shows here as a session.
    assert sessions(app_name) == 0


def test_a_read_cancelled_midway_leaves_the_next_write_counting_its_rows(
    store: Storage, run: Run
) -> None:
    """A lookup cancelled while its statements are in flight (a client gone, a shutdown) hands
    its connection back to the pool; the writes after it still learn what they changed: a
    deleted source is reported deleted, not missing."""

    async def cancel_lookups_then_delete(rounds: int) -> list[bool]:
        reported = []
        for n in range(rounds):
            name = f"gone{n}"
            await store.sources.create(SourceRecord(name, name, "webhook", True, "", (), 1, 1))
            for steps in range(8):  # cancelled after 0 to 7 turns of the loop: some mid-flight
                lookup = asyncio.ensure_future(store.sources.get("hooks"))
                for _ in range(steps):
                    await asyncio.sleep(0)
                lookup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lookup
            reported.append(await store.sources.delete(name))
        return reported

    assert run(cancel_lookups_then_delete(20)) == [True] * 20
    assert run(store.sources.get("gone0")) is None
    assert run(store.sources.delete("gone0")) is False
