"""Time-ordered event ids (UUIDv7) and the time conversions that ride on them.

An event's id is minted at receipt and its receipt time is read back from the id, so the two can
never disagree, and a time range maps onto a range of ids: filters by time use the primary key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import uuid_utils

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def new_event_id() -> tuple[str, int]:
    """A fresh UUIDv7 string and the Unix milliseconds embedded in it."""
    value = uuid_utils.uuid7()
    return str(value), value.timestamp


def new_profile_id() -> str:
    """A fresh profile id (UUIDv7, so profiles sort by creation)."""
    return str(uuid_utils.uuid7())


def ms_of_event_id(event_id: str) -> int | None:
    """The Unix milliseconds a UUIDv7 event id was minted at; None for a string that is not one
    in its canonical form (lowercase, hyphenated), which the store's id order relies on."""
    try:
        value = uuid.UUID(event_id)
    except ValueError:
        return None
    if value.version != 7 or str(value) != event_id:
        return None
    return value.int >> 80


def id_floor(ms: int) -> str:
    """The smallest UUIDv7 string minted at or after `ms`: a lower bound for id ranges."""
    stamp = f"{ms:012x}"
    return f"{stamp[:8]}-{stamp[8:]}-0000-0000-000000000000"


def ms_to_iso(ms: int) -> str:
    """Unix milliseconds as ISO 8601 in UTC with a `Z`, the one format the API renders."""
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def iso_to_ms(text: str) -> int:
    """ISO 8601 (a date, or a time with or without zone; naive means UTC) as Unix milliseconds."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


EARLIEST_MS = 0
"""1970-01-01T00:00:00Z: before it, a time has no UUIDv7 prefix to range over."""
LATEST_MS = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MS
"""9999-12-31T00:00:00Z: a day short of the calendar's end, so a bucket after it still has
a date to be named by."""


def now_ms() -> int:
    """The current time in Unix milliseconds."""
    return (datetime.now(tz=UTC) - _EPOCH) // _MS
