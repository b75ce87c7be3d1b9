"""Events staged as JSON Lines for DuckDB: written page by page by orjson into a temporary
file, then read by one statement that streams it, so memory stays bounded whatever the number
of events, and the JSON of properties and context is the exact text the API shows (written
once, never re-encoded)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from pathlib import Path

import orjson

from eventstitch.columnar.engine import quoted
from eventstitch.columnar.shred import Collector, column_types
from eventstitch.files import open_private
from eventstitch.storage.records import EventRecord

STAGED_TYPES = {
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
    "FROM read_json({staged}, format = 'newline_delimited', columns = {columns}) "
    "ORDER BY received_ms, id"
)


def _line(event: EventRecord, shredder: Collector | None) -> bytes:
    return (
        orjson.dumps(
            {
                **(shredder.columns(event.properties) if shredder is not None else {}),
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


async def stage(
    events: AsyncIterable[EventRecord],
    staging: Path,
    shredder: Collector | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write `events` to the owner-only file `staging`, with the typed columns of `shredder`
    when one is given; how many."""
    written = 0
    with open_private(staging) as out:
        async for event in events:
            out.write(_line(event, shredder))
            written += 1
            if progress is not None:
                progress(1)
    return written


def select(staging: Path, written: int, shredder: Collector | None) -> str:
    """The statement reading the staged events back, in time order: the columns of an export,
    plus the kept typed columns and `received_ms` with a `shredder`."""
    if written == 0:
        return _empty_select()
    staged = dict(STAGED_TYPES)
    if shredder is not None:
        staged |= column_types(shredder.manifest())
    # Column names are ours (fixed, or t_/i_/f_ and a hash): never client text.
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in staged.items()) + "}"
    shredded = "".join(f", {name}" for name in staged if name not in STAGED_TYPES)
    if shredder is not None:
        shredded += ", received_ms"  # time as a plain integer: buckets 2.5x faster
    return _SELECT.format(columns=columns, shredded=shredded, staged=quoted(staging))


def _empty_select() -> str:
    """The same columns with no rows (read_json cannot read an empty file)."""
    return (
        "SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS VARCHAR) AS type, "
        "CAST(NULL AS VARCHAR) AS source_id, CAST(NULL AS TIMESTAMPTZ) AS received_at, "
        "CAST(NULL AS BOOLEAN) AS profile_less, CAST(NULL AS VARCHAR) AS profile_id, "
        "CAST(NULL AS VARCHAR) AS session_id, CAST(NULL AS VARCHAR) AS properties, "
        "CAST(NULL AS VARCHAR) AS context LIMIT 0"
    )
