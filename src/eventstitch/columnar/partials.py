"""What each segment gives a question, kept per process: a segment file is never changed in
place (one written again is another inode), so the groups it contributes to a count, a sum,
an average, a minimum or a maximum are computed once and merged with the rest on every later
answer, the way Druid and Pinot
cache per-segment results. A dashboard asking the same question again reads only the segments
written since and the hot tail.

Distinct counts and percentiles do not merge from per-segment numbers, and a query with `top`
or time buckets cut by a zone's bounds is answered whole, so neither is kept here.

The cache holds at most EVENTSTITCH_COLUMNAR_CACHE_ROWS partial groups, least recently used
first out, none with a key part over MAX_KEY_CHARS characters. Its key is the segment's path,
inode, modification time and size (a segment written again is another file) and the question
less its time range (a segment kept here lies wholly inside the range asked).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

MERGEABLE = ("count", "sum", "avg", "min", "max")

Partial = tuple[Any, ...]
"""One group of one segment: its key parts, its event count, then the metric's aggregates as
columnar/query.py selects them (present, integers, floats, then an integer and a float sum,
minimum or maximum)."""


class SegmentCache:
    """What segments gave questions, per (segment, question), least recently used out first,
    holding at most a budget of units (groups here; bytes in columnar/value_parts.py)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Hashable, ...], tuple[Any, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def lookup(self, file: Hashable, shape: Hashable) -> Any | None:
        with self._lock:
            found = self._entries.get((file, shape))
            if found is None:
                return None
            self._entries.move_to_end((file, shape))
            return found[0]

    def store(self, file: Hashable, shape: Hashable, entry: Any, size: int, budget: int) -> None:
        """Keep an entry of `size` units, dropping the least recently used past `budget` in
        all; an entry larger than the whole budget is not kept."""
        if size > budget:
            return
        with self._lock:
            old = self._entries.pop((file, shape), None)
            if old is not None:
                self._held -= old[1]
            self._drop_past(budget - size)
            self._entries[(file, shape)] = (entry, size)
            self._held += size

    def held(self) -> int:
        return self._held

    def trim(self, budget: int) -> None:
        """Drop the least recently used entries until at most `budget` units are held."""
        with self._lock:
            self._drop_past(budget)

    def _drop_past(self, budget: int) -> None:
        """The least recently used entries out until at most `budget` units are held (the
        lock held)."""
        while self._entries and self._held > budget:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._held -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0


_groups = SegmentCache()


def identity(segment: Path) -> tuple[str, int, int, int] | None:
    """The file as the cache knows it, or None when it is gone."""
    try:
        stat = segment.stat()
    except FileNotFoundError:
        return None
    return (str(segment), stat.st_ino, stat.st_mtime_ns, stat.st_size)


def lookup(file: Hashable, shape: Hashable) -> tuple[Partial, ...] | None:
    found: tuple[Partial, ...] | None = _groups.lookup(file, shape)
    return found


MAX_KEY_CHARS = 256
"""A segment whose groups have a key part longer than this is not kept, so a row of the cache
stays under about 1 KB (three parts at most, and six numbers)."""


def long_key(rows: Sequence[tuple[Any, ...]]) -> bool:
    """Whether a group's key has a part past MAX_KEY_CHARS (such a segment is not kept)."""
    return any(isinstance(part, str) and len(part) > MAX_KEY_CHARS for row in rows for part in row)


def store(file: Hashable, shape: Hashable, rows: tuple[Partial, ...], budget: int) -> None:
    """Keep a segment's groups, dropping the least recently used past `budget` rows in all; a
    segment with more groups than the whole budget, or with a long key, is not kept."""
    if not long_key(rows):
        _groups.store(file, shape, rows, len(rows), budget)


MAX_OVERFLOWING = 1024
_lock = threading.Lock()
_overflowing: set[Hashable] = set()
"""Questions a segment or the tail gave more than EVENTSTITCH_MAX_INSIGHT_GROUPS groups: they
are answered by one statement, without reading segment by segment first (a stated bound,
cleared whole when passed)."""


def overflows(shape: Hashable) -> bool:
    return shape in _overflowing


def mark_overflowing(shape: Hashable) -> None:
    with _lock:
        if len(_overflowing) >= MAX_OVERFLOWING:
            _overflowing.clear()
        _overflowing.add(shape)


def held_rows() -> int:
    """Partial groups held now (what the budget counts)."""
    return _groups.held()


def clear() -> None:
    _groups.clear()
    with _lock:
        _overflowing.clear()


def merge(
    kind: str, width: int, rows: Sequence[Partial], into: dict[tuple[Any, ...], list[Any]]
) -> None:
    """Add partial groups to `into`, by key: counts and integer sums add (exactly), float sums
    are kept as parts for one `fsum` at the end, extremes take the extreme. Each part's float
    sum is already rounded, so a sum of floats over several segments may differ from one pass
    over all the values by about a unit in the last place per segment."""
    for row in rows:
        key = row[:width]
        acc = into.get(key)
        if acc is None:
            acc = into[key] = [0, 0, 0, 0, None, []]
        acc[0] += row[width]
        if kind == "count":
            continue
        present, ints, floats, int_part, float_part = row[width + 1 : width + 6]
        acc[1] += present
        acc[2] += ints
        acc[3] += floats
        if int_part is not None:
            if acc[4] is None:
                acc[4] = int_part
            elif kind in ("sum", "avg"):
                acc[4] += int_part
            else:
                acc[4] = min(acc[4], int_part) if kind == "min" else max(acc[4], int_part)
        if float_part is not None:
            acc[5].append(float_part)


def values(kind: str, acc: list[Any]) -> tuple[Any, ...]:
    """A merged group's aggregates in the order columnar/query.py reads them from DuckDB."""
    if kind == "count":
        return ()
    floats = acc[5]
    if kind in ("sum", "avg"):
        float_part = math.fsum(floats) if floats else None
    elif kind == "min":
        float_part = min(floats) if floats else None
    else:
        float_part = max(floats) if floats else None
    return (acc[1], acc[2], acc[3], acc[4], float_part)
