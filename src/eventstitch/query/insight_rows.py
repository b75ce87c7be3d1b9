"""From gathered groups to the rows of an insights answer: metric values and percentiles,
`top` folding the rest into `other`, and the order of rows. Pure functions, the same whichever
engine gathered the groups."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, tzinfo
from typing import Any

import orjson

from eventstitch.query import buckets
from eventstitch.query.insight_params import PERCENTILES, InsightQuery, is_number

Key = tuple[Any, ...]
OTHER = ("other",)
"""The key of the groups `top` folds together (no JSON key encodes to a tuple)."""


@dataclasses.dataclass(slots=True)
class Group:
    """What one group has gathered: events, values for the metric, non-numbers skipped."""

    count: int = 0
    skipped: int = 0
    numbers: list[int | float] = dataclasses.field(default_factory=list)
    distinct: set[Any] = dataclasses.field(default_factory=set)
    fixed: bool = False
    """The metric was computed where the events are (by DuckDB): `value` holds it."""
    value: int | float | None = None

    def merge(self, other: Group) -> None:
        assert not (self.fixed or other.fixed) or not (self.count and other.count), "computed"
        if other.fixed:
            self.fixed, self.value = True, other.value
        self.count += other.count
        self.skipped += other.skipped
        self.numbers += other.numbers
        self.distinct |= other.distinct


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
        return len(group.distinct)
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


def row(query: InsightQuery, key: Key, group: Group, tz: tzinfo) -> dict[str, Any]:
    """One group as a row of the answer: its dimensions, count and metric."""
    answer: dict[str, Any] = {}
    for dim, part in zip(query.by, key, strict=True):
        if part == OTHER:
            answer[dim.label] = "other"
            answer["other"] = True
        elif dim.is_time:
            answer[dim.label] = buckets.label(datetime.fromtimestamp(part / 1000, tz))
        elif dim.kind == "property":
            answer[dim.label] = orjson.loads(part)
        else:
            answer[dim.label] = part
    answer["count"] = group.count
    answer["value"] = metric_value(query, group)
    if query.metric.kind not in ("count", "count_distinct"):
        answer["skipped"] = group.skipped
    return answer


def order(item: tuple[Key, Group]) -> tuple[Any, ...]:
    """The sort key of a group: its dimensions' values in a stable order."""
    return tuple(sort_value(part) for part in item[0])


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
