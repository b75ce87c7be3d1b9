"""The hot tail kept per process, in commit order.

Every answer from the segments also reads the events after them from the store: 20-30 s of
events with rounds 10 s apart (columnar/segments.py), each value parsed out of its payload by
the database, about 5 µs an event (docs/benchmarks.md); at 10 000 events a second, 1 to 1.5 s
a question. The store
gives a commit order (`EventStore.commit_span`: on SQLite a rowid, since SQLite appends each
commit past the largest; on PostgreSQL a snapshot, since ids are minted before commits that
land out of their order, and the events committed since are those whose inserting transaction
it did not see). The rows a question staged from the tail are kept as small private Parquet
files, with the position read up to. Asked again, only the events committed since are read and
written as one more file, and files whose rows the segments took over meanwhile (the
checkpoint moved on) are deleted; the rest are read from the checkpoint on. Any metric is then
computed over the kept rows with the segments, distinct counts and percentiles included, as
over a tail read whole.

A kept tail is keyed by the store, the segments' generation (forgetting the segments after
erased or imported events forgets this too), the columns read and the filter less its time
range; a question with `until` reads its tail whole. One question at a time uses a kept tail
(its lock), so files are added once and an answer sees them whole. Past MAX_FILES files, they
are merged into one.

At most EVENTSTITCH_COLUMNAR_TAIL_ROWS rows, for at most MAX_KEPT questions, are kept in all,
least recently used tails dropped first (one in use is dropped when its question ends); a
tail longer than that is answered from what was kept and what was read, then dropped. Files
are on disk, not in memory: 1-5 bytes a row measured on bench/insights_tail.py's payloads,
more for values that rarely repeat. A process's files are named after it, and a rebuild
deletes those of processes that are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from eventstitch.columnar import parquet
from eventstitch.files import PRIVATE_FILE
from eventstitch.storage.records import CommitPosition

MAX_FILES = 8
"""Files a kept tail has before they are merged into one: each answer adds one, and opening
a file costs a read of its footer."""
PREFIX = ".kept-tail"

_numbers = itertools.count()


@dataclass(slots=True)
class Kept:
    """One question's tail: files of its rows from `boundary` on (with their row counts), read
    from the store up to commit position `position`."""

    columns: dict[str, str]
    """Column name → DuckDB type, as staged lines hold them (columnar/query.py)."""
    folder: Path
    files: list[tuple[Path, int, int]] = field(default_factory=list)
    """Each file, its rows and the latest receipt time in it."""
    boundary: int = 0
    position: CommitPosition | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dropped: bool = False
    """Left out of the budget to make room while in use: its files go when the question using
    it ends."""

    @property
    def rows(self) -> int:
        return sum(rows for _, rows, _ in self.files)

    @property
    def paths(self) -> list[Path]:
        return [path for path, _, _ in self.files]


_kept: OrderedDict[Hashable, Kept] = OrderedDict()


MAX_KEPT = 256
"""Questions a process keeps a tail for, however few rows each holds (a key holds a filter's
values, so the keys themselves are bounded too); least recently used out first."""


def entry(key: Hashable, columns: dict[str, str], folder: Path) -> Kept:
    """The kept tail of `key`, made empty when there is none; the most recently used now."""
    found = _kept.get(key)
    if found is None:
        for old_key, old in list(_kept.items())[: max(0, len(_kept) + 1 - MAX_KEPT)]:
            forget(old_key, old)
        found = _kept[key] = Kept(columns, folder)
    _kept.move_to_end(key)
    return found


def forget(key: Hashable, kept: Kept) -> None:
    """Drop `key`'s tail (its files now, or when the question using it ends)."""
    if _kept.get(key) is kept:
        del _kept[key]
    kept.dropped = True
    if not kept.lock.locked():
        release(kept)


def release(kept: Kept) -> None:
    """After a question: a tail dropped meanwhile loses its files."""
    if kept.dropped:
        _delete(kept.paths)
        kept.files, kept.position, kept.boundary = [], None, 0


def held_rows() -> int:
    """Rows kept in all (what EVENTSTITCH_COLUMNAR_TAIL_ROWS bounds)."""
    return sum(k.rows for k in _kept.values())


def make_room(rows: int, budget: int, keeping: Kept) -> None:
    """Drop the least recently used tails, other than `keeping`, until `rows` more fit in
    `budget`."""
    for key, kept in list(_kept.items()):
        if held_rows() + rows <= budget:
            return
        if kept is not keeping:
            forget(key, kept)


def restart(kept: Kept) -> None:
    """Forget what `kept` holds and read its tail again (the store went back behind the
    position: its newest events were deleted)."""
    _delete(kept.paths)
    kept.files, kept.position = [], None


def begin(kept: Kept, boundary: int) -> None:
    """Make `kept` the rows from `boundary` on: files wholly before it are deleted (the
    segments hold their rows); a boundary moved back (segments forgotten and written again
    within one generation) starts it again."""
    if boundary < kept.boundary:
        restart(kept)
    else:
        gone = [f for f in kept.files if f[2] < boundary]
        _delete([path for path, _, _ in gone])
        kept.files = [f for f in kept.files if f[2] >= boundary]
    kept.boundary = boundary


def append(
    kept: Kept,
    staged: Path,
    rows: int,
    latest: int,
    position: CommitPosition,
    limits: parquet.Limits,
) -> None:
    """Keep the staged lines of the events committed up to `position` as one more file;
    past MAX_FILES, merge the files (without the rows before the boundary) into one."""
    if rows:
        target = _new_file(kept.folder)
        lines = staged_lines(kept.columns).replace("?", parquet.quoted(staged))
        _copy(limits, f"SELECT * FROM {lines}", target)
        kept.files.append((target, rows, latest))
    kept.position = position
    if len(kept.files) > MAX_FILES:
        target = _new_file(kept.folder)
        listed = ", ".join(parquet.quoted(p) for p in kept.paths)
        merged = f"SELECT * FROM read_parquet([{listed}]) WHERE ms >= {int(kept.boundary)}"
        _copy(limits, merged, target)
        counted = parquet.one_row(
            limits, "SELECT count(*), max(ms) FROM read_parquet(?)", [str(target)]
        )
        old = kept.paths
        kept.files = [(target, int(counted[0]), int(counted[1] or 0))]
        _delete(old)


def summary(kept: Kept, limits: parquet.Limits) -> tuple[int, int | None]:
    """How many rows are kept from the boundary on, and the earliest receipt time among them
    (None when there are none)."""
    if not kept.files:
        return 0, None
    found = parquet.one_row(
        limits,
        "SELECT count(*), min(ms) FROM read_parquet(?) WHERE ms >= ?",
        [[str(p) for p in kept.paths], kept.boundary],
    )
    return int(found[0]), None if found[1] is None else int(found[1])


def staged_lines(columns: dict[str, str]) -> str:
    """DuckDB's reader of a staged tail file (its path the one parameter), typed as `columns`."""
    spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
    return f"read_json(?, format = 'newline_delimited', columns = {spec})"


def delete_orphans(folder: Path) -> None:
    """Delete the kept-tail files of processes that are gone (killed before their end)."""
    for leftover in folder.glob(f"{PREFIX}.*"):  # files and partial files
        try:
            pid = int(leftover.name.split(".")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        except (ValueError, IndexError, PermissionError):
            continue  # not ours to judge: a malformed name, or a process of another user


def clear() -> None:
    """Drop every kept tail (tests; at exit a process's files go with `delete_orphans`)."""
    for key, kept in list(_kept.items()):
        forget(key, kept)


def _new_file(folder: Path) -> Path:
    return folder / f"{PREFIX}.{os.getpid()}.{next(_numbers)}.parquet"


def _delete(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _copy(limits: parquet.Limits, select: str, target: Path) -> None:
    """Write the rows of `select` (COPY takes no bound parameters: its paths are ours, quoted)
    as an owner-only Parquet file, under a temporary name then renamed."""
    # Not `.partial`: a rebuild deletes those in the folder, and this is written without
    # its lock (`delete_orphans` removes this one if its process dies).
    partial = target.with_name(f"{target.name}.writing")
    cursor = parquet.connect(limits)
    try:
        cursor.execute(f"COPY ({select}) TO {parquet.quoted(partial)} (FORMAT parquet)")
    finally:
        cursor.close()
    os.chmod(partial, PRIVATE_FILE)
    os.replace(partial, target)
