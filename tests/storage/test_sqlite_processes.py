"""Collector processes started at the same moment on one new SQLite file (`serve --workers N`
does this) all open and migrate it; none fails its startup with "database is locked"."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

from eventstitch.config import load_config
from eventstitch.storage import open_storage

PROCESSES = 6
ROUNDS = 30  # before the fix, a few rounds in thirty failed on a 2-core machine


def migrate_when_released(data_dir: Path, barrier: Barrier, answers: Queue[str]) -> None:
    storage = open_storage(load_config({}, data_dir=data_dir))
    barrier.wait(timeout=30)
    try:
        asyncio.run(storage.migrate())
        answers.put("ok")
    except Exception as exc:  # reported to the test, which names it
        answers.put(repr(exc))


def test_processes_opening_a_new_file_together_all_migrate_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_number in range(ROUNDS):
        data_dir = tmp_path / f"round-{round_number}"
        barrier = context.Barrier(PROCESSES)
        answers: Queue[str] = context.Queue()
        processes = [
            context.Process(target=migrate_when_released, args=(data_dir, barrier, answers))
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        results = [answers.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert results == ["ok"] * PROCESSES, f"round {round_number}: {results}"
        with sqlite3.connect(data_dir / "eventstitch.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        assert len(versions) == len(set(versions)) > 0  # each migration applied once
