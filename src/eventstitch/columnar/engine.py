"""The process's DuckDB: one in-memory instance (opening one takes ~40 ms) that every segment
write, segment read and Parquet export uses through its own cursor, with its memory and its
spill folder capped."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from eventstitch.config import Config


@dataclass(frozen=True, slots=True)
class Limits:
    """What the process's DuckDB may use: memory, and a private folder of bounded size to
    spill to past it (DuckDB's defaults: most of the RAM, and `.tmp` in the working folder
    up to 90 % of the disk)."""

    memory_mb: int
    spill_dir: Path
    spill_mb: int

    @classmethod
    def of(cls, config: Config) -> Limits:
        return cls(
            memory_mb=config.columnar_memory_mb,
            spill_dir=config.data_dir / "columnar-spill",
            spill_mb=config.columnar_spill_mb,
        )


_shared: duckdb.DuckDBPyConnection | None = None
_applied: Limits | None = None
_shared_lock = threading.Lock()


def connect(limits: Limits) -> duckdb.DuckDBPyConnection:
    """A cursor on the process's in-memory DuckDB, opened once with its memory capped, its
    clock in UTC and Parquet footers cached. Cursors may run in parallel threads; the cap
    holds for all of them together (the limits of the last caller, when they differ), and
    databases attached through one cursor are seen by all."""
    global _shared, _applied
    with _shared_lock:
        if _shared is None:
            _shared = duckdb.connect(":memory:")
            _shared.execute(f"SET GLOBAL threads = {max(1, min(os.cpu_count() or 1, 4))}")
            _shared.execute("SET GLOBAL TimeZone = 'UTC'")
            _shared.execute("SET GLOBAL parquet_metadata_cache = true")
        if limits != _applied:
            limits.spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _shared.execute(f"SET GLOBAL memory_limit = '{int(limits.memory_mb)}MB'")
            _shared.execute(f"SET GLOBAL temp_directory = {quoted(limits.spill_dir)}")
            _shared.execute(f"SET GLOBAL max_temp_directory_size = '{int(limits.spill_mb)}MB'")
            _applied = limits
        return _shared.cursor()


def quoted(path: Path) -> str:
    """A path as a SQL string literal (statements such as COPY and ATTACH take no bound
    parameters; every path given here is one of ours)."""
    return "'" + str(path).replace("'", "''") + "'"
