"""The writer lock of a segments folder: one process writes segments at a time.

An exclusive `flock` on `<folder>/writer.lock`, taken by `serve`'s refresher for one round
(non-blocking: a worker that finds it taken skips the round), by `eventstitch insights
rebuild` (waiting), and by `segments.invalidate` (waiting: a round in progress would otherwise
write its checkpoint back over the segments just forgotten). Locks are per open file: a
process holding it that asks again through another call waits for itself, so code that holds
it calls the lock-free parts directly. Why per round, and why flock: `refresher.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK = "writer.lock"


@contextlib.contextmanager
def writer_lock(where: Path, *, wait: bool) -> Iterator[int | None]:
    """The folder's writer lock: yields its descriptor while held, or None when another process
    holds it and `wait` is false. The holder's pid is written into the file, for messages."""
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(where / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)  # releases the lock unless a child still holds the descriptor


def holder(where: Path) -> str:
    """The pid last written into the folder's lock file ('?' when unknown), for messages."""
    try:
        return (where / LOCK).read_text().strip() or "?"
    except OSError:
        return "?"
