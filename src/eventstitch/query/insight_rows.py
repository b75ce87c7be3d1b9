"""From gathered groups to the rows of an insights answer: metric values and percentiles,
`top` folding the rest into `other`, and the order of rows. Pure functions, the same whichever
engine gathered the groups."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, tzinfo
from operator import itemgetter
from typing import Any

import orjson

from eventstitch.query import buckets
from eventstitch.query.insight_params import PERCENTILES, Dimension, InsightQuery, is_number

Key = tuple[Any, ...]
ROLLUP_DIMENSIONS = ("type", "source", "hour", "day")
"""What the hourly rollup counts by (in UTC): the dimensions a count can be answered from it."""
OTHER = ("other",)
"""The key of the groups `top` folds together (no JSON key encodes to a tuple)."""


@dataclasses.dataclass(slots=True)
class Group:
    """What one group has gathered: events, values for the metric, non-numbers skipped."""

    count: int = 0
    skipped: int = 0
    numbers: list[int | float] | None = None
    """The metric's numbers, from the first one on (a group of counts only makes none: an
    answer may hold tens of thousands of groups)."""
    distinct: set[Any] | None = None
    """The distinct values, from the first one on."""
    fixed: bool = False
    """The metric was computed where the events are (by DuckDB): `value` holds it."""
    value: int | float | None = None

    def add_numbers(self, numbers: list[int | float]) -> None:
        if self.numbers is None:
            self.numbers = []
        self.numbers += numbers

    def add_distinct(self, found: Iterable[Any]) -> None:
        if self.distinct is None:
            self.distinct = set()
        self.distinct.update(found)

    def merge(self, other: Group) -> None:
        assert not (self.fixed or other.fixed) or not (self.count and other.count), "computed"
        if other.fixed:
            self.fixed, self.value = True, other.value
        self.count += other.count
        self.skipped += other.skipped
        if other.numbers:
            self.add_numbers(other.numbers)
        if other.distinct:
            self.add_distinct(other.distinct)


EMPTY = Group()
"""The group of an interval without events, shared by every such key of an answer: read,
never merged into (`fold_top` merges into groups of its own)."""


def fold_top(query: InsightQuery, groups: dict[Key, Group]) -> dict[Key, Group]:
    """Keep the `top` values of the first dimension that is not time, ranked by the metric over
    all their groups; fold the rest into `other`."""
    at = next(i for i, d in enumerate(query.by) if not d.is_time)
    per_value: dict[Any, Group] = {}
    for key, group in groups.items():
        per_value.setdefault(key[at], Group()).merge(group)
    ranked = sorted(
        per_value,
        key=lambda v: (_rank(metric_value(query, per_value[v])), sort_value(v)),
    )
    kept = set(ranked[: query.top])
    folded: dict[Key, Group] = {}
    for key, group in groups.items():
        new_key = key if key[at] in kept else (*key[:at], OTHER, *key[at + 1 :])
        target = folded.get(new_key)
        if target is None:
            folded[new_key] = target = Group()
        target.merge(group)
    return folded


def _rank(value: float | int | None) -> tuple[int, float]:
    return (1, 0.0) if value is None else (0, -float(value))


def metric_value(query: InsightQuery, group: Group) -> int | float | None:
    """The metric of one group; None for a numeric metric without numbers."""
    kind = query.metric.kind
    if kind == "count":
        return group.count
    if group.fixed:
        return group.value
    if kind == "count_distinct":
        return len(group.distinct or ())
    numbers = group.numbers
    if not numbers:
        return None
    if kind in ("sum", "avg"):
        total: int | float = (
            sum(numbers) if all(isinstance(n, int) for n in numbers) else math.fsum(numbers)
        )
        return total if kind == "sum" else total / len(numbers)
    if kind == "min":
        return min(numbers)
    if kind == "max":
        return max(numbers)
    return percentile(sorted(numbers), PERCENTILES[kind])


def percentile(ordered: list[int | float], fraction: float) -> float:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont: the
    value at rank fraction * (n - 1) of the sorted values."""
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def render(query: InsightQuery, groups: dict[Key, Group], tz: tzinfo) -> list[dict[str, Any]]:
    """The groups as the rows of the answer, in their order: each row its dimensions, count and
    metric."""
    ordered, names, labels, folded = _arranged(query, groups, tz)
    numeric = query.metric.kind not in ("count", "count_distinct")
    if not folded and not numeric and len(names) == 2 and None not in labels:
        # The common large answer (a series by type or source): one dict display per row.
        (first, second), (labels_0, labels_1) = names, labels
        assert labels_0 is not None
        assert labels_1 is not None
        return [
            {first: labels_0[k0], second: labels_1[k1], "count": g.count, "value": value}
            for k0, k1 in ordered
            for g in (groups[k0, k1],)
            for value in (metric_value(query, g),)
        ]
    rows: list[dict[str, Any]] = []
    for key in ordered:
        group = groups[key]
        answer = dict(zip(names, map(_label, labels, key), strict=True))
        if folded and OTHER in key:  # `other` right after the dimension folded, as it reads
            at = key.index(OTHER)
            items = list(answer.items())
            answer = dict([*items[: at + 1], ("other", True), *items[at + 1 :]])
        answer["count"] = group.count
        answer["value"] = metric_value(query, group)
        if numeric:
            answer["skipped"] = group.skipped
        rows.append(answer)
    return rows


def render_counts(query: InsightQuery, counts: dict[Key, int], tz: tzinfo) -> list[dict[str, Any]]:
    """Bare counts as the rows of a count answer, in `render`'s order and shape: for the
    rollup's dimensions (type, source, time buckets), whose long series are counted without an
    object per group (storage.records.CountResult). Their values are names (text, never null)
    and bucket starts (ints), already in `row_order` by themselves, so the keys sort as tuples
    with no key function. Not for properties, nor for `top`'s `other`."""
    assert all(dim.kind in ROLLUP_DIMENSIONS for dim in query.by), query.by
    names = [dim.label for dim in query.by]
    labels = [
        _labels(dim, parts, tz)
        for dim, parts in zip(query.by, _values_of(query, counts), strict=True)
    ]
    ordered = sorted(counts)
    if len(names) == 2:
        (first, second), (labels_0, labels_1) = names, labels
        return [
            {first: labels_0[k0], second: labels_1[k1], "count": n, "value": n}
            for k0, k1 in ordered
            for n in (counts[k0, k1],)
        ]
    rows: list[dict[str, Any]] = []
    for key in ordered:
        answer = dict(zip(names, map(_label, labels, key), strict=True))
        answer["count"] = answer["value"] = counts[key]
        rows.append(answer)
    return rows


def _arranged(
    query: InsightQuery, keys: Collection[Key], tz: tzinfo
) -> tuple[list[Key], list[str], list[dict[Any, Any] | None], bool]:
    """The keys in the order of the rows, each dimension's name, how each of its values reads
    (None for a property: loaded for each row), and whether `top` folded some into `other`.
    Each distinct value of a dimension is ranked and labelled once, not once a row: 30 days by
    hour and type is 14 400 rows over 720 hours and 20 types (docs/benchmarks.md). A
    dimension's values are of one kind (time ints, flags, names, JSON), so a value is its own
    key here (True == 1 never meets 1 in one dimension)."""
    distinct = _values_of(query, keys)
    ordered = sorted(keys, key=_order_of([_positions(parts) for parts in distinct]))
    names = [dim.label for dim in query.by]
    labels = [
        _labels(dim, parts, tz) if dim.kind != "property" else None
        for dim, parts in zip(query.by, distinct, strict=True)
    ]
    return ordered, names, labels, any(OTHER in parts for parts in distinct)


def _values_of(query: InsightQuery, keys: Collection[Key]) -> list[set[Any]]:
    """Each dimension's distinct values among the keys."""
    return [set(map(itemgetter(at), keys)) for at in range(len(query.by))]


def _label(labels: dict[Any, Any] | None, part: Any) -> Any:
    """A key part as the row shows it: from its dimension's labels, or a property's JSON
    loaded afresh for each row (an object or array is never shared between rows)."""
    if labels is not None:
        return labels[part]
    return "other" if part == OTHER else orjson.loads(part)


def _labels(dim: Dimension, parts: set[Any], tz: tzinfo) -> dict[Any, Any]:
    """How each distinct value of a dimension (not a property) reads in a row: a time bucket as
    ISO 8601 in the zone, the rest as they are; `other` as "other"."""
    labels: dict[Any, Any] = {}
    for part in parts:
        if part == OTHER:
            labels[part] = "other"
        elif dim.is_time:
            labels[part] = buckets.label(datetime.fromtimestamp(part / 1000, tz))
        else:
            labels[part] = part
    return labels


def _positions(parts: set[Any]) -> dict[Any, int]:
    """Each value's place in the order of `row_order`."""
    return {part: place for place, part in enumerate(sorted(parts, key=row_order))}


def row_order(part: Any) -> tuple[tuple[int, Any], bytes]:
    """A key part's place among its dimension's values: `sort_value`, then, for JSON values
    that rank the same (1 and 1.0; 0, 0.0 and -0.0), their text, so that the rows of an answer
    come in one order whatever order the engine found them in."""
    return sort_value(part), part if isinstance(part, bytes) else b""


def _order_of(positions: list[dict[Any, int]]) -> Callable[[Key], Any]:
    """The sort key of a row's key from its dimensions' places."""
    if len(positions) == 1:
        (first,) = positions
        return lambda key: first[key[0]]
    if len(positions) == 2:
        first, second = positions
        width = len(second)  # one integer per row sorts faster than a pair
        return lambda key: first[key[0]] * width + second[key[1]]
    return lambda key: tuple(p[part] for p, part in zip(positions, key, strict=True))


def sort_value(part: Any) -> tuple[int, Any]:
    """Keys in a stable order: nulls, booleans, numbers, text, objects; `other` last."""
    if part == OTHER:
        return (9, "")
    if isinstance(part, bytes):
        value = orjson.loads(part)
        if value is None:
            return (0, 0)
        if isinstance(value, bool):
            return (1, int(value))
        if is_number(value):
            return (2, value)
        if isinstance(value, str):
            return (3, value)
        return (4, part.decode())
    if isinstance(part, bool):
        return (1, int(part))
    if isinstance(part, int):
        return (2, part)
    return (3, part)
