"""Query rules every backend shares: time buckets, when the rollup answers exactly, and what
counts as a number in a property filter. Pure; the SQL stays in each backend's module."""

from __future__ import annotations

import re

from eventstitch.storage.records import CountQuery, EventFilter

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MINUTE_MS = 60_000
BUCKET_MS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
ROLLUP_DIMENSIONS = {"type", "source", "hour", "day"}

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INT64 = range(-(2**63), 2**63)


def as_number(value: str) -> int | float | None:
    """The number a value is written as, in JSON syntax only: `1_000`, ` 5` or `nan` are
    strings to match exactly, not numbers (Python's int() and float() would take them)."""
    if not _JSON_NUMBER.fullmatch(value):
        return None
    if len(value) <= 20 and "." not in value and "e" not in value.lower():
        number = int(value)
        if number in _INT64:  # SQLite binds 64-bit integers; beyond that compare as a real
            return number
    real = float(value)
    return real if real not in (float("inf"), float("-inf")) else None


def can_use_rollup(event_filter: EventFilter, query: CountQuery) -> bool:
    """Whether the hourly rollup answers this count exactly."""
    return (
        query.distinct is None
        and all(g.dimension in ROLLUP_DIMENSIONS for g in query.group_by)
        and event_filter.profile_id is None
        and event_filter.converted is None
        and not event_filter.properties
        and all(
            bound is None or bound % HOUR_MS == 0
            for bound in (event_filter.since_ms, event_filter.until_ms)
        )
    )
