"""Events as one Parquet file (`eventstitch export --format parquet`), written by DuckDB
from the staged events: readable by DuckDB, pandas and Spark."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, Callable
from pathlib import Path

from eventstitch.columnar import engine, staging
from eventstitch.files import PRIVATE_FILE
from eventstitch.storage.records import EventRecord


async def write(
    *,
    events: AsyncIterable[EventRecord],
    target: Path,
    limits: engine.Limits,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write `events` to `target` as Parquet (owner-only, replaced atomically); how many."""
    staged = target.with_name(f".{target.name}.{os.getpid()}.staging.jsonl")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        written = await staging.stage(events, staged, progress=progress)
        con = engine.connect(limits)
        try:
            source = staging.select(staged, written, None)
            con.execute(f"COPY ({source}) TO {engine.quoted(partial)} (FORMAT parquet)")
        finally:
            con.close()
        os.chmod(partial, PRIVATE_FILE)
        os.replace(partial, target)
    finally:
        for leftover in (staged, partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return written
