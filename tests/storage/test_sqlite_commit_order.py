"""Reading the hot tail in commit order on SQLite costs what the tail holds, not what the store
holds: the first ask finds the tail's first rowid through the id index instead of walking the
table from its oldest event (it did, 0.28 s a first ask at a million events)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventstitch.config import load_config
from eventstitch.ids import id_floor
from eventstitch.storage import open_storage
from eventstitch.storage.records import EventFilter
from eventstitch.storage.sqlite.db import SqliteDb

START_MS = 1_780_000_000_000
TAIL = 20


def _fill(path: Path, old: int) -> int:
    """`old` events a minute apart, then TAIL events a second apart; the tail's start (ms)."""
    tail_ms = START_MS + old * 60_000
    times = [START_MS + n * 60_000 for n in range(old)] + [tail_ms + n for n in range(TAIL)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (id, type, source_id, received_ms, profile_less, properties, context)"
        " VALUES (?, 'charge', 'shop', ?, 1, ?, '{}')",
        [(f"{id_floor(ms)[:-12]}{n:012x}", ms, f'{{"n": {n}}}') for n, ms in enumerate(times)],
    )
    conn.execute("COMMIT")
    conn.close()
    return tail_ms


def _first_ask(tmp_path: Path, old: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The tail's rows read by a first ask, and the SQLite VM steps (in hundreds) it took."""
    data_dir = tmp_path / f"store-{old}"
    storage = open_storage(load_config({}, data_dir=data_dir))
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    original = SqliteDb._read_with_deadline

    def counted(self: SqliteDb, query: Callable[[sqlite3.Connection], Any]) -> Any:
        def with_count(conn: sqlite3.Connection) -> Any:
            conn.set_progress_handler(count, 100)
            return query(conn)

        return original(self, with_count)

    async def ask() -> int:
        await storage.start()
        try:
            await storage.close()  # migrated; filled behind its back, then opened again
            tail_ms = _fill(data_dir / "eventstitch.db", old)
            await storage.start()
            span = await storage.events.commit_span(EventFilter(), after=None)
            assert span is not None
            monkeypatch.setattr(SqliteDb, "_read_with_deadline", counted)
            found = await storage.events.values_committed(
                EventFilter(since_ms=tail_ms), [("n",)], span=span, resume=None, limit=1000
            )
            monkeypatch.setattr(SqliteDb, "_read_with_deadline", original)
            assert found is not None
            rows, resume = found
            assert resume is None
            return len(rows)
        finally:
            await storage.close()

    return asyncio.run(ask()), steps[0]


def test_a_first_ask_of_the_tail_does_not_walk_the_events_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_rows, small_steps = _first_ask(tmp_path, 1_000, monkeypatch)
    large_rows, large_steps = _first_ask(tmp_path, 30_000, monkeypatch)
    assert small_rows == large_rows == TAIL
    # Thirty times the events before the tail: a walk of the table took about thirty times
    # the steps (902 against 32 hundreds before the fix); the index range, about the same.
    assert large_steps <= 2 * small_steps + 10, (small_steps, large_steps)
