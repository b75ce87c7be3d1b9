"""Time buckets in a time zone: the bucket an instant falls in, and every bucket of a range,
so a series shows its empty intervals. Days, weeks and months follow the zone's wall clock
(a day across a DST change lasts 23 or 25 hours); weeks start on Monday."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}


def zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def floor(ms: int, unit: str, tz: tzinfo) -> datetime:
    """The start of the bucket holding the instant `ms`, as an aware time in `tz`."""
    at = datetime.fromtimestamp(ms / 1000, tz)
    if unit in _STEP:
        # minutes and hours are absolute intervals; a zone's offset is whole minutes
        size = int(_STEP[unit].total_seconds() * 1000)
        offset = int(at.utcoffset().total_seconds() * 1000)  # type: ignore[union-attr]
        local = ms + offset
        return datetime.fromtimestamp((local - local % size - offset) / 1000, tz)
    day = at.date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    return _midnight(day.year, day.month, day.day, tz)


def following(start: datetime, unit: str, tz: tzinfo) -> datetime:
    """The start of the bucket after the one starting at `start`."""
    if unit in _STEP:
        return (start.astimezone(UTC) + _STEP[unit]).astimezone(tz)
    if unit == "month":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return _midnight(year, month, 1, tz)
    days = 7 if unit == "week" else 1
    nxt = start.date() + timedelta(days=days)
    return _midnight(nxt.year, nxt.month, nxt.day, tz)


def _midnight(year: int, month: int, day: int, tz: tzinfo) -> datetime:
    """Local midnight; where a zone skips midnight, the instant the clock jumps to."""
    naive = datetime(year, month, day)
    return datetime.fromtimestamp(naive.replace(tzinfo=tz).timestamp(), tz)


def to_ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def label(at: datetime) -> str:
    """A bucket's start as ISO 8601 with its offset (`2026-03-29T00:00:00+01:00`)."""
    return at.isoformat(timespec="seconds")


def series(
    since_ms: int, until_ms: int, unit: str, tz: tzinfo, limit: int
) -> list[datetime] | None:
    """Every bucket from the one holding `since_ms` to the last starting before `until_ms`;
    None when there are more than `limit`."""
    buckets: list[datetime] = []
    at = floor(since_ms, unit, tz)
    while to_ms(at) < until_ms:
        if len(buckets) == limit:
            return None
        buckets.append(at)
        at = following(at, unit, tz)
    return buckets
