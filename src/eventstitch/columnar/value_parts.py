"""What each segment gives a percentile or a distinct count, kept per process beside the
groups of partials.py: a percentile needs every number and a distinct count every value, so
what is kept per segment and group is its numbers (as DuckDB's `quantile_cont` reads them,
doubles) or its distinct values (as ids in this process's table of the texts seen), and an
answer merges them with numpy: a partition finds the two numbers a percentile lies between
(DuckDB interpolates, columnar/query.py), and a table of flags counts each id once. The
numbers are the same as one statement over all the events gives.

Everything kept here (the arrays and the texts' table, each text its length plus
TEXT_OVERHEAD bytes) stays under EVENTSTITCH_COLUMNAR_CACHE_VALUES_MB: arrays are dropped least
recently used first, and when the texts alone pass half of it the table starts afresh under a
new generation, which every kept id array carries in its key, so none is read against another
table.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from eventstitch.columnar.partials import SegmentCache, long_key
from eventstitch.query.insight_params import PERCENTILES

PER_VALUE = (*PERCENTILES, "count_distinct")
TEXT_OVERHEAD = 110
"""Bytes a text costs in the table besides its characters: its str object (49 bytes by
sys.getsizeof for an ASCII text) and its dict entry with its id (60 bytes an entry, measured
with tracemalloc over 60 000 emails)."""
GROUP_OVERHEAD = 200
"""Bytes a kept group costs besides its array (its key, counts and the array's header)."""

Numbers = npt.NDArray[np.float64]
Ids = npt.NDArray[np.int32]
ValuePart = tuple[Any, ...]
"""One group of one segment: its key parts, its event count, then for a percentile the values
present, the integers and the floats among them and the numbers; for a distinct count the ids
of its distinct values."""

CACHE = SegmentCache()


class _Texts:
    """The ids of the texts seen, one table per generation."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.bytes = 0
        self.generation = 0


_texts = _Texts()
_lock = threading.Lock()


class Stale(Exception):
    """The texts' table started afresh since an answer read its generation (the question is
    not too large for the cache: asked again, it is kept)."""


def generation() -> int:
    return _texts.generation


def intern(texts: Sequence[str], expected: int, budget: int) -> Ids | None:
    """The ids of `texts` in the table of generation `expected`; None when these texts take
    it past half of `budget` bytes (then it starts afresh, and what was kept goes with it);
    Stale when the table is of another generation by now. The arrays kept are trimmed to
    what the table leaves of the budget."""
    with _lock:
        if _texts.generation != expected:
            raise Stale
        ids = _texts.ids
        new = set(texts).difference(ids)
        if new:
            ids.update(zip(new, range(len(ids), len(ids) + len(new)), strict=True))
            _texts.bytes += sum(map(len, new)) + len(new) * TEXT_OVERHEAD
        if _texts.bytes > budget // 2:
            _start_afresh()
            return None
        CACHE.trim(budget - _texts.bytes)
        return np.fromiter(map(ids.__getitem__, texts), dtype=np.int32, count=len(texts))


def _start_afresh() -> None:
    _texts.ids = {}
    _texts.bytes = 0
    _texts.generation += 1
    CACHE.clear()


def store(file: Any, shape: Any, rows: tuple[ValuePart, ...], budget: int) -> None:
    """Keep a segment's groups within what the texts' table leaves of `budget` bytes; not a
    segment with a key part past partials.MAX_KEY_CHARS."""
    if long_key(rows):
        return
    size = sum(
        row[-1].nbytes + GROUP_OVERHEAD + sum(len(part) for part in row if isinstance(part, str))
        for row in rows
    )
    CACHE.store(file, shape, rows, size, budget - _texts.bytes)


def held_bytes() -> int:
    """What is kept now, the texts' table included."""
    return CACHE.held() + _texts.bytes


def clear() -> None:
    with _lock:
        _start_afresh()


def merge(
    kind: str, width: int, rows: Sequence[ValuePart], into: dict[tuple[Any, ...], list[Any]]
) -> None:
    """Add a part's groups to `into`, by key: counts add, arrays are gathered. An accumulator
    is [events, present, integers, floats, arrays], and a percentile once computed."""
    for row in rows:
        key = row[:width]
        acc = into.get(key)
        if acc is None:
            acc = into[key] = [0, 0, 0, 0, []]
        acc[0] += row[width]
        if kind != "count_distinct":
            acc[1] += row[width + 1]
            acc[2] += row[width + 2]
            acc[3] += row[width + 3]
        if len(row[-1]):
            acc[4].append(row[-1])


class Flags:
    """One flag per id of the texts' table, for counting the distinct ids of group after
    group; cleared after each."""

    def __init__(self) -> None:
        self._seen = np.zeros(0, dtype=bool)

    def distinct(self, parts: list[Ids]) -> int:
        """How many ids the parts hold together (each part's ids are distinct already)."""
        if not parts:
            return 0
        if len(parts) == 1:
            return len(parts[0])
        highest = max(int(part.max()) for part in parts)
        if len(self._seen) <= highest:
            self._seen = np.zeros(highest + 1, dtype=bool)
        seen, count = self._seen, 0
        for part in parts:
            fresh = part[~seen[part]]
            seen[fresh] = True
            count += len(fresh)
        for part in parts:
            seen[part] = False
        return count


def values(kind: str, acc: list[Any], flags: Flags) -> tuple[Any, ...]:
    """A merged group's aggregates in the order columnar/query.py reads them from DuckDB (a
    percentile computed from its `ranked_pair` and appended to `acc` already)."""
    if kind == "count_distinct":
        return (flags.distinct(acc[4]),)
    return (acc[1], acc[2], acc[3], acc[5])


def ranked_pair(parts: list[Numbers], fraction: float) -> tuple[float, float, float] | None:
    """The two numbers a percentile of all the parts' numbers lies between, and how far
    between them, found as DuckDB's `quantile_cont` finds them (the rank fraction * (n - 1),
    its floor and its ceiling); None without numbers. The interpolation itself is left to
    DuckDB (columnar/query.py), whose build may fuse it into one rounding."""
    if not parts:
        return None
    numbers = parts[0] if len(parts) == 1 else np.concatenate(parts)
    rank = float(len(numbers) - 1) * fraction
    low, high = math.floor(rank), math.ceil(rank)
    ranked = np.partition(numbers, sorted({low, high}))
    return float(ranked[low]), float(ranked[high]), rank - low
