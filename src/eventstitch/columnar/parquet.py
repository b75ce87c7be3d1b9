"""Events as Parquet, written by DuckDB from pages of records.

Pages are staged as JSON Lines in a temporary file next to the target, then one `COPY`
turns them into Parquet: DuckDB streams the staging file, so memory stays bounded whatever
the number of events, and the JSON of properties and context is kept as the exact text the
API shows (written once by orjson, never re-encoded).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, Callable
from pathlib import Path

import duckdb
import orjson

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
    "profile_less, profile_id, session_id, properties, context "
    "FROM read_json(?, format = 'newline_delimited', columns = {columns}) "
    "ORDER BY received_ms, id"
)


def connect(memory_mb: int) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with its memory capped (its default is most of the machine's RAM)
    and its clock in UTC."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _staged_line(event: EventRecord) -> bytes:
    return (
        orjson.dumps(
            {
                "id": event.id,
                "type": event.type,
                "source_id": event.source_id,
                "received_ms": event.received_ms,
                "profile_less": event.profile_less,
                "profile_id": event.profile_id,
                "session_id": event.session_id,
                "properties": orjson.dumps(event.properties).decode(),
                "context": orjson.dumps(event.context).decode(),
            }
        )
        + b"\n"
    )


async def write(
    *,
    events: AsyncIterable[EventRecord],
    target: Path,
    memory_mb: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write `events` to `target` as Parquet (owner-only, replaced atomically); how many."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.staging.jsonl")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    written = 0
    try:
        with open_private(staging) as out:
            async for event in events:
                out.write(_staged_line(event))
                written += 1
                if progress is not None:
                    progress(1)
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in _STAGED_TYPES.items()) + "}"
        con = connect(memory_mb)
        try:
            select = _SELECT.format(columns=columns)
            if written == 0:
                select = _empty_select()
            # COPY takes no bound parameters: the staged path is known to be ours, and quoted.
            source = select.replace("?", _quoted(staging))
            con.execute(f"COPY ({source}) TO {_quoted(partial)} (FORMAT parquet)")
        finally:
            con.close()
        os.chmod(partial, PRIVATE_FILE)
        os.replace(partial, target)
    finally:
        for leftover in (staging, partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return written


def _empty_select() -> str:
    """The same columns with no rows (read_json cannot read an empty file)."""
    return (
        "SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS VARCHAR) AS type, "
        "CAST(NULL AS VARCHAR) AS source_id, CAST(NULL AS TIMESTAMPTZ) AS received_at, "
        "CAST(NULL AS BOOLEAN) AS profile_less, CAST(NULL AS VARCHAR) AS profile_id, "
        "CAST(NULL AS VARCHAR) AS session_id, CAST(NULL AS VARCHAR) AS properties, "
        "CAST(NULL AS VARCHAR) AS context LIMIT 0"
    )


def _quoted(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
