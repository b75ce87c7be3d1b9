"""Events as Parquet, written by DuckDB from pages of records.

Pages are staged as JSON Lines in a temporary file next to the target, then one `COPY`
turns them into Parquet: DuckDB streams the staging file, so memory stays bounded whatever
the number of events, and the JSON of properties and context is kept as the exact text the
API shows (written once by orjson, never re-encoded).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from eventstitch.columnar.shred import Collector, Manifest, column_types
from eventstitch.config import Config
from eventstitch.files import PRIVATE_FILE, open_private
from eventstitch.storage.records import EventRecord

COLUMNS = (
    "id",
    "type",
    "source_id",
    "received_at",
    "profile_less",
    "profile_id",
    "session_id",
    "properties",
    "context",
)
_STAGED_TYPES = {
    "id": "VARCHAR",
    "type": "VARCHAR",
    "source_id": "VARCHAR",
    "received_ms": "BIGINT",
    "profile_less": "BOOLEAN",
    "profile_id": "VARCHAR",
    "session_id": "VARCHAR",
    "properties": "VARCHAR",
    "context": "VARCHAR",
}
# received_at is a UTC instant (Parquet isAdjustedToUTC), exact to the millisecond.
_SELECT = (
    "SELECT id, type, source_id, make_timestamptz(received_ms * 1000) AS received_at, "
    "profile_less, profile_id, session_id, properties, context{shredded} "
    "FROM read_json(?, format = 'newline_delimited', columns = {columns})"
)
_ORDER = " ORDER BY received_ms, id"
"""An export's rows in time order. A segment's stay in the order the store gave them (newest
first, so still grouped by time for row-group pruning): sorting holds every typed column of a
whole hour, and past about 100 000 realistic events that did not fit 256 MB."""


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
    """A cursor on the process's in-memory DuckDB, opened once (opening one takes ~40 ms) with
    its memory capped (its default is most of the machine's RAM), its clock in UTC and Parquet
    footers cached (a segment is never changed in place, and DuckDB checks a cached footer
    against the file). Cursors may run in parallel threads;
    the cap holds for all of them together (the limits of the last caller, when they differ).
    Nothing lives in it but settings, so a spill folder DuckDB will not change once it has
    spilled there (another store's, in one process) gets a new one."""
    global _shared, _applied
    with _shared_lock:
        if _applied is not None and limits.spill_dir != _applied.spill_dir:
            _shared = None  # cursors in use keep the old one until they close
        if _shared is None:
            _shared = duckdb.connect(":memory:")
            _shared.execute(f"SET GLOBAL threads = {max(1, min(os.cpu_count() or 1, 4))}")
            _shared.execute("SET GLOBAL TimeZone = 'UTC'")
            _shared.execute("SET GLOBAL parquet_metadata_cache = true")
            _applied = None
        if limits != _applied:
            limits.spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            _shared.execute(f"SET GLOBAL memory_limit = '{int(limits.memory_mb)}MB'")
            if _applied is None:  # once spilled to, DuckDB refuses to set it again
                _shared.execute(f"SET GLOBAL temp_directory = {quoted(limits.spill_dir)}")
            _shared.execute(f"SET GLOBAL max_temp_directory_size = '{int(limits.spill_mb)}MB'")
            _applied = limits
        return _shared.cursor()


def _staged_line(event: EventRecord, shredder: Collector | None) -> bytes:
    line = {
        "id": event.id,
        "type": event.type,
        "source_id": event.source_id,
        "received_ms": event.received_ms,
        "profile_less": event.profile_less,
        "profile_id": event.profile_id,
        "session_id": event.session_id,
    }
    if shredder is None:
        line["properties"] = orjson.dumps(event.properties).decode()
        line["context"] = orjson.dumps(event.context).decode()
    else:  # a segment keeps typed columns, not the raw JSON: staged, it was read and dropped
        line |= shredder.columns(event.properties)
    return orjson.dumps(line) + b"\n"


async def write(
    *,
    events: AsyncIterable[EventRecord],
    target: Path,
    limits: Limits,
    progress: Callable[[int], None] | None = None,
    shredder: Collector | None = None,
) -> int:
    """Write `events` to `target` as Parquet (owner-only, replaced atomically); how many.
    With a `shredder`, the paths it keeps are typed columns too (columnar/shred.py)."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.staging.jsonl")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    written = 0
    try:
        with open_private(staging) as out:
            async for event in events:
                out.write(_staged_line(event, shredder))
                written += 1
                if progress is not None:
                    progress(1)
        staged = dict(_STAGED_TYPES)
        if shredder is not None:
            staged |= column_types(shredder.manifest())
        # Column names are ours (fixed, or t_/i_/f_ and a hash): never client text.
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in staged.items()) + "}"
        shredded = "".join(f", {name}" for name in staged if name not in _STAGED_TYPES)
        if shredder is not None:
            shredded += ", received_ms"  # time as a plain integer: buckets 2.5x faster
        con = connect(limits)
        try:
            select = _SELECT.format(columns=columns, shredded=shredded) + _ORDER
            if shredder is not None:  # a segment: typed columns, not the raw JSON
                select = f"SELECT {_SEGMENT_COLUMNS} FROM ({select.removesuffix(_ORDER)})"
            if written == 0:
                select = _empty_select()
            # COPY takes no bound parameters: the staged path is known to be ours, and quoted.
            source = select.replace("?", quoted(staging))
            options = "" if shredder is None else f", ROW_GROUP_SIZE {SEGMENT_ROW_GROUP}"
            con.execute(f"COPY ({source}) TO {quoted(partial)} (FORMAT parquet{options})")
        finally:
            con.close()
        os.chmod(partial, PRIVATE_FILE)
        os.replace(partial, target)
    finally:
        for leftover in (staging, partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return written


SEGMENT_ROW_GROUP = 30_000
"""Rows per row group of a segment: DuckDB buffers a whole row group of every typed column
before writing it; at its default (122 880) a day of realistic payloads (150 columns) did not
fit in 256 MB, at 30 000 it does."""
_SEGMENT_OWN_COLUMNS = (*(c for c in COLUMNS if c not in ("properties", "context")), "received_ms")
"""The columns of every segment besides its typed ones."""
_SEGMENT_COLUMNS = "COLUMNS(lambda c: c NOT IN ('properties', 'context'))"
"""A segment's columns: no raw JSON (queries read typed columns only)."""


def merge(sources: list[Path], target: Path, limits: Limits, manifest: Manifest) -> None:
    """Segments put together into one Parquet file (owner-only, replaced atomically), with
    the typed columns of the paths `manifest` (theirs, merged) keeps, united by name, NULL from
    a source without one: every source's columns, united, can be wider than DuckDB's memory
    cap lets it write. The sources are given in time order, each newest first, so the rows
    stay grouped by time without a sort: the copy streams."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    # Column names are ours (fixed, or t_/i_/f_ and a hash): never client text.
    columns = ", ".join([*_SEGMENT_OWN_COLUMNS, *column_types(manifest)])
    con = connect(limits)
    try:
        listed = ", ".join(quoted(s) for s in sources)
        con.execute(
            f"COPY (SELECT {columns} FROM read_parquet([{listed}], "
            f"union_by_name = true)) TO {quoted(partial)} "
            f"(FORMAT parquet, ROW_GROUP_SIZE {SEGMENT_ROW_GROUP})"
        )
        os.chmod(partial, PRIVATE_FILE)
        os.replace(partial, target)
    finally:
        con.close()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def one_row(limits: Limits, sql: str, params: list[Any]) -> tuple[Any, ...]:
    """The one row a statement with bound parameters gives (an aggregate without grouping)."""
    cursor = connect(limits)
    try:
        row = cursor.execute(sql, params).fetchone()
    finally:
        cursor.close()
    assert row is not None
    return tuple(row)


def row_count(sources: list[Path], limits: Limits) -> int:
    """How many rows the Parquet files hold together (from their footers); 0 for none."""
    if not sources:
        return 0  # DuckDB's read_parquet refuses an empty list
    sql = "SELECT count(*) FROM read_parquet(?)"
    return int(one_row(limits, sql, [[str(s) for s in sources]])[0])


def rows_since(source: Path, since_ms: int, limits: Limits) -> int:
    """How many rows of a segment were received at `since_ms` or later."""
    sql = "SELECT count(*) FROM read_parquet(?) WHERE received_ms >= ?"
    return int(one_row(limits, sql, [str(source), since_ms])[0])


def _empty_select() -> str:
    """The same columns with no rows (read_json cannot read an empty file)."""
    return (
        "SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS VARCHAR) AS type, "
        "CAST(NULL AS VARCHAR) AS source_id, CAST(NULL AS TIMESTAMPTZ) AS received_at, "
        "CAST(NULL AS BOOLEAN) AS profile_less, CAST(NULL AS VARCHAR) AS profile_id, "
        "CAST(NULL AS VARCHAR) AS session_id, CAST(NULL AS VARCHAR) AS properties, "
        "CAST(NULL AS VARCHAR) AS context LIMIT 0"
    )


def quoted(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
