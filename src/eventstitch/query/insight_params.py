"""Parsing of `GET /api/insights` parameters (and `eventstitch insights` options) into one
`InsightQuery`; every bad parameter is a 400 naming it."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from typing import Any, Literal

from eventstitch import paths
from eventstitch.errors import BadRequest, clip
from eventstitch.query.schemas import PROPERTY_PREFIX, outside_strings, parse_property_path
from eventstitch.storage.records import PropertyPath, property_label

NUMERIC_METRICS = ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
TIME_UNITS = ("minute", "hour", "day", "week", "month")
PLAIN_DIMENSIONS = ("type", "source", "profile_less", "converted")
MAX_DIMENSIONS = 3
MAX_COMPARISONS = 16
MAX_IN_VALUES = 100
OPERATORS = ("gt", "lt", "in", "exists")
_COMPARISON = re.compile(r"^(properties\..+)\[(gt|lt|in|exists)\]$", re.DOTALL)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

Operator = Literal["gt", "lt", "in", "exists"]


@dataclass(frozen=True, slots=True)
class Metric:
    """What each group is summed up to: `count`, `count_distinct` of a field, or a numeric
    aggregate of a property path."""

    kind: str
    path: PropertyPath | None = None
    field: str | None = None
    """For count_distinct: `profile_id`, `source_id` or None (then `path` is set)."""

    @property
    def label(self) -> str:
        if self.kind == "count":
            return "count"
        target = self.field or property_label(self.path or ())
        return f"{self.kind}:{target}"


@dataclass(frozen=True, slots=True)
class Dimension:
    """One `by` dimension: a plain one, a time unit, or a property path."""

    kind: str
    path: PropertyPath | None = None

    @property
    def label(self) -> str:
        return property_label(self.path) if self.path is not None else self.kind

    @property
    def is_time(self) -> bool:
        return self.kind in TIME_UNITS


@dataclass(frozen=True, slots=True)
class Comparison:
    """`properties.<path>[op]=value`, applied to every value the path reaches."""

    path: PropertyPath
    op: Operator
    number: float | None = None
    values: tuple[str, ...] = ()
    exists: bool = True


@dataclass(frozen=True, slots=True)
class InsightQuery:
    metric: Metric
    by: tuple[Dimension, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    tz: str = "UTC"
    top: int | None = None


def bad(name: str, problem: str, value: object = None, **more: Any) -> BadRequest:
    detail: dict[str, Any] = {"field": name, **more}
    if value is not None:
        detail["value"] = clip(value, 40)
    return BadRequest(f"{name} {problem}", errors=[detail], reason="bad_query")


def json_number(text: str) -> float | None:
    """A value written as a JSON number, else None (`1_000`, `nan`, ` 5` are not numbers)."""
    if not _JSON_NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if number not in (float("inf"), float("-inf")) else None


def parse_metric(raw: str | None) -> Metric:
    """`count`, `count_distinct:<field>` or `<aggregate>:properties.<path>`."""
    if raw is None or raw == "count":
        return Metric("count")
    kind, sep, target = raw.partition(":")
    if not sep or not target:
        raise bad(
            "metric",
            "must be count, count_distinct:<field> or one of "
            + ", ".join(NUMERIC_METRICS)
            + " followed by :properties.<path>",
            raw,
        )
    if kind == "count_distinct":
        if target in ("profile_id", "source_id"):
            return Metric(kind, field=target)
        return Metric(kind, path=parse_property_path(target, field="metric"))
    if kind in NUMERIC_METRICS:
        return Metric(kind, path=parse_property_path(target, field="metric"))
    raise bad("metric", f"has an unknown aggregate {clip(kind, 40)!r}", raw)


def parse_by(raw: str | None) -> tuple[Dimension, ...]:
    """Up to three dimensions, comma-separated, at most one of them a time unit."""
    if not raw:
        return ()
    dimensions: list[Dimension] = []
    for part in (p.strip() for p in outside_strings(raw, ",")):
        if part in PLAIN_DIMENSIONS or part in TIME_UNITS:
            dimensions.append(Dimension(part))
        elif part.startswith(PROPERTY_PREFIX):
            dimensions.append(Dimension("property", parse_property_path(part, field="by")))
        else:
            raise bad(
                "by",
                f"has {clip(part, 40)!r}; use type, source, profile_less, converted, "
                f"{', '.join(TIME_UNITS)} or properties.<path>",
                raw,
            )
    if len(dimensions) > MAX_DIMENSIONS:
        raise bad("by", f"takes at most {MAX_DIMENSIONS} dimensions", raw, limit=MAX_DIMENSIONS)
    if len({d.label for d in dimensions}) != len(dimensions):
        raise bad("by", "names a dimension twice", raw)
    if sum(d.is_time for d in dimensions) > 1:
        raise bad("by", "takes at most one time unit", raw)
    return tuple(dimensions)


def parse_tz(raw: str | None) -> str:
    """An IANA time zone name (zoneinfo), UTC when not given."""
    if raw is None or raw in ("UTC", "Z"):
        return "UTC"
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise bad("tz", "must be an IANA time zone name such as Europe/Paris", raw) from None
    return raw


def parse_top(raw: str | None, max_groups: int) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= max_groups:
        raise bad("top", f"must be a whole number from 1 to {max_groups}", raw, limit=max_groups)
    return int(raw)


def parse_query(
    *,
    metric: str | None,
    by: str | None,
    tz: str | None,
    top: str | None,
    comparisons: tuple[Comparison, ...],
    max_groups: int,
) -> InsightQuery:
    """Every insights parameter checked, as one query."""
    query = InsightQuery(
        metric=parse_metric(metric),
        by=parse_by(by),
        comparisons=comparisons,
        tz=parse_tz(tz),
        top=parse_top(top, max_groups),
    )
    if query.top is not None and all(d.is_time for d in query.by):
        raise bad("top", "needs a `by` dimension that is not a time unit", top)
    return query


def split_property_params(
    params: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], tuple[Comparison, ...]]:
    """Query-string pairs split into `properties.<path>=v` equalities (as on /api/events) and
    `properties.<path>[op]=v` comparisons; other pairs are left out."""
    equalities: list[tuple[str, str]] = []
    comparisons: list[Comparison] = []
    for name, value in params:
        if not name.startswith(PROPERTY_PREFIX):
            continue
        match = _COMPARISON.match(name)
        if match is None:
            equalities.append((name, value))
            continue
        comparisons.append(_comparison(name, match.group(1), match.group(2), value))
    if len(comparisons) > MAX_COMPARISONS:
        raise bad(
            "properties",
            f"takes at most {MAX_COMPARISONS} comparisons ([gt], [lt], [in], [exists])",
            limit=MAX_COMPARISONS,
        )
    return equalities, tuple(comparisons)


def _comparison(name: str, path_text: str, op: str, value: str) -> Comparison:
    path = parse_property_path(path_text)
    if op in ("gt", "lt"):
        number = json_number(value)
        if number is None:
            raise bad(name, "must be a number written as JSON, e.g. 10 or 2.5", value)
        return Comparison(path, op, number=number)  # type: ignore[arg-type]
    if op == "in":
        values = tuple(value.split(","))
        if len(values) > MAX_IN_VALUES:
            raise bad(name, f"takes at most {MAX_IN_VALUES} values", value, limit=MAX_IN_VALUES)
        return Comparison(path, "in", values=values)
    if value not in ("true", "false"):
        raise bad(name, "must be true or false", value)
    return Comparison(path, "exists", exists=value == "true")


def matches(comparison: Comparison, properties: dict[str, Any]) -> bool:
    """Whether an event's properties pass a comparison: any value the path reaches does."""
    found = list(paths.values(properties, comparison.path))
    if comparison.op == "exists":
        return bool(found) == comparison.exists
    if comparison.op == "in":
        return any(_equals(value, text) for value in found for text in comparison.values)
    limit = comparison.number
    assert limit is not None
    numbers = [v for v in found if is_number(v)]
    if comparison.op == "gt":
        return any(v > limit for v in numbers)
    return any(v < limit for v in numbers)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equals(value: Any, text: str) -> bool:
    """A JSON value equal to a query-string value, as `properties.<path>=v` means it."""
    if isinstance(value, str):
        return value == text
    if value is None or isinstance(value, bool):
        return text == {None: "null", True: "true", False: "false"}[value]
    if is_number(value):
        number = json_number(text)
        return number is not None and float(value) == number
    return False
