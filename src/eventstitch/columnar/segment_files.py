"""Segment files: each an immutable DuckDB database holding one table, `events`, of sealed
events with their typed property columns (columnar/shred.py).

DuckDB's own format rather than Parquet: the same aggregates read about twice as fast (its
lightweight compression and zone maps need no page decoding; measured in docs/benchmarks.md),
and a DuckDB file opened read-only may be opened by any number of processes at once. Each is
written once under a temporary name by the one process holding the folder's writer lock,
then renamed into place; readers attach each file read-only once per process and keep it
attached while it is listed (attaching costs about a millisecond, a query over 30 days
reads 30 or more files).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from eventstitch.columnar import engine, staging
from eventstitch.columnar.shred import Collector
from eventstitch.files import PRIVATE_FILE
from eventstitch.storage.records import EventRecord

SUFFIX = ".duckdb"
TABLE = "events"
_SEGMENT_COLUMNS = "COLUMNS(lambda c: c NOT IN ('properties', 'context'))"
"""A segment's columns: no raw JSON (queries read typed columns only), which also keeps a
day's merge within the memory cap."""

MAX_ATTACHED = 2048
"""Segment files a process keeps attached at most (about a day file per day of history, plus
the hours and parts of the days not compacted yet); past it the least recently read that no
query is reading are detached."""

_names = itertools.count()


def _alias(prefix: str) -> str:
    """A database name for ATTACH: ours, never client text."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


async def write(
    *,
    events: AsyncIterable[EventRecord],
    target: Path,
    limits: engine.Limits,
    shredder: Collector,
) -> int:
    """Write `events` to `target` as a segment (owner-only, replaced atomically); how many.
    Nothing is written when there are none."""
    staged = target.with_name(f".{target.name}.{os.getpid()}.staging.jsonl")
    try:
        written = await staging.stage(events, staged, shredder)
        if written:
            select = f"SELECT {_SEGMENT_COLUMNS} FROM ({staging.select(staged, written, shredder)})"
            _create(target, select, [], limits)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
    return written


def merge(sources: list[Path], target: Path, limits: engine.Limits) -> None:
    """Segments put together into one (owner-only, replaced atomically), their columns united
    by name, in the order given."""
    aliases = [_alias("src") for _ in sources]
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {a}.{TABLE}" for a in aliases)
    _create(target, union, list(zip(aliases, sources, strict=True)), limits)


def _create(
    target: Path, select: str, reading: list[tuple[str, Path]], limits: engine.Limits
) -> None:
    """The table of a new segment file from `select`, which reads the segments `reading`
    (attached read-only for the statement, under their aliases)."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    alias = _alias("new")
    con = engine.connect(limits)
    attached: list[str] = []
    try:
        for name, source in reading:
            con.execute(f"ATTACH {engine.quoted(source)} AS {name} (READ_ONLY)")
            attached.append(name)
        con.execute(f"ATTACH {engine.quoted(partial)} AS {alias}")
        attached.append(alias)
        con.execute(f"CREATE TABLE {alias}.{TABLE} AS {select}")
        con.execute(f"DETACH {alias}")  # checkpoints: the file holds every row
        attached.remove(alias)
        os.chmod(partial, PRIVATE_FILE)
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        for name in attached:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DETACH {name}")
        con.close()
        for leftover in (partial, partial.with_name(partial.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


@dataclass(slots=True)
class _Attachment:
    alias: str
    identity: tuple[int, int]
    """The file's inode and modification time when attached: a segment written again under
    the same name (a rebuild from scratch) is another file."""
    readers: int = 0


_attached: OrderedDict[Path, _Attachment] = OrderedDict()
_retired: list[_Attachment] = []
"""Attachments whose file was replaced while a query read them: detached once it ends."""
_attach_lock = threading.Lock()


@contextlib.contextmanager
def reading(cursor: duckdb.DuckDBPyConnection, files: list[Path]) -> Iterator[list[str]]:
    """The table name of each segment in `files`, attached read-only for the duration (and
    kept attached after it, while the file stays). A file deleted meanwhile raises
    FileNotFoundError or duckdb.IOException: the caller lists the segments again."""
    held: list[_Attachment] = []
    try:
        with _attach_lock:
            for path in files:
                held.append(_attach(cursor, path))
            _sweep(cursor)
        yield [f"{a.alias}.{TABLE}" for a in held]
    finally:
        with _attach_lock:
            for attachment in held:
                attachment.readers -= 1


def _attach(cursor: duckdb.DuckDBPyConnection, path: Path) -> _Attachment:
    stat = path.stat()
    identity = (stat.st_ino, stat.st_mtime_ns)
    found = _attached.get(path)
    if found is not None and found.identity != identity:
        _retired.append(_attached.pop(path))
        _sweep(cursor)  # the old file detached before the new one takes its path, if unread
        found = None
    if found is None:
        found = _Attachment(_alias("seg"), identity)
        cursor.execute(f"ATTACH {engine.quoted(path)} AS {found.alias} (READ_ONLY)")
        _attached[path] = found
    _attached.move_to_end(path)
    found.readers += 1
    return found


def _sweep(cursor: duckdb.DuckDBPyConnection) -> None:
    """Detach what no query reads and is gone, replaced, or past MAX_ATTACHED (least recently
    read first): deleted files are not held open, and attachments stay bounded."""
    for path in [p for p, a in _attached.items() if a.readers == 0 and not p.exists()]:
        _retired.append(_attached.pop(path))
    while len(_attached) > MAX_ATTACHED:
        idle = next((p for p, a in _attached.items() if a.readers == 0), None)
        if idle is None:
            break
        _retired.append(_attached.pop(idle))
    for attachment in [a for a in _retired if a.readers == 0]:
        _retired.remove(attachment)
        with contextlib.suppress(duckdb.Error):
            cursor.execute(f"DETACH {attachment.alias}")


def forget(limits: engine.Limits) -> None:
    """Detach every segment no query is reading (after an erase: the files are deleted, and
    the process lets go of them at once rather than at its next query)."""
    with _attach_lock:
        cursor = engine.connect(limits)
        try:
            for path in [p for p, a in _attached.items() if a.readers == 0]:
                _retired.append(_attached.pop(path))
            _sweep(cursor)
        finally:
            cursor.close()
