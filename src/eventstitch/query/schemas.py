"""What goes in and out of the events and insights API, and parsing of its query parameters."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic import BaseModel, Field

from eventstitch import paths
from eventstitch.errors import BadRequest, clip
from eventstitch.ids import EARLIEST_MS, LATEST_MS, iso_to_ms, ms_to_iso
from eventstitch.storage.records import EventRecord, GroupBy, PropertyPath

PROPERTY_PREFIX = "properties."
MAX_PATH_KEYS = 32
MAX_KEY_CHARS = 128
_EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DIMENSIONS = ("type", "source", "minute", "hour", "day")
TIME_DIMENSIONS = ("minute", "hour", "day")


class EventOut(BaseModel):
    """One stored event (documentation model; answers are rendered with `event_json`)."""

    id: str
    type: str
    source_id: str
    received_at: str
    profile_less: bool
    profile_id: str | None
    session_id: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    converted_at: str | None = Field(description="When a profile-less event was linked.")
    converted_by: str | None = Field(description="The identifier (kind:value) that linked it.")


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class ConversionOut(BaseModel):
    by: str
    rows: list[dict[str, Any]] = Field(
        description="Per group: profile_less (events collected without a profile), converted "
        "(of those, linked to a profile since), rate, and converted by identifier kind."
    )


class CountsOut(BaseModel):
    by: list[str]
    distinct: str | None
    total: int = Field(description="Events matching the filters, whatever the grouping.")
    rows: list[dict[str, Any]] = Field(description="One per group: a key per dimension, `count`.")
    truncated: bool
    from_rollup: bool = Field(description="Answered from the hourly rollup instead of a scan.")


class InsightsOut(BaseModel):
    metric: str
    by: list[str]
    tz: str
    top: int | None
    total: int = Field(description="Events matching the filters and comparisons.")
    skipped: int | None = Field(
        None, description="Numeric metrics: values at the path that were not numbers."
    )
    rows: list[dict[str, Any]] = Field(
        description="One per group: a key per dimension, `count` (events), `value` (the "
        "metric), `skipped` for numeric metrics, `other: true` on a group folded by `top`."
    )
    truncated: bool = Field(description="More groups than max_insight_groups were found.")
    engine: str = Field(description="What answered: `rollup` or `scan`.")
    took_ms: float


def event_json(event: EventRecord) -> dict[str, Any]:
    """An event as the API renders it."""
    return {
        "id": event.id,
        "type": event.type,
        "source_id": event.source_id,
        "received_at": ms_to_iso(event.received_ms),
        "profile_less": event.profile_less,
        "profile_id": event.profile_id,
        "session_id": event.session_id,
        "properties": event.properties,
        "context": event.context,
        "converted_at": ms_to_iso(event.converted_ms) if event.converted_ms else None,
        "converted_by": event.converted_by,
    }


def parse_time(name: str, value: str | None) -> int | None:
    """An ISO 8601 query parameter as Unix ms, or a 400 naming the parameter. Times outside
    1970..9999 are refused here: ids and bucket labels cannot be made for them."""
    if value is None:
        return None
    try:
        ms = iso_to_ms(value)
    except (ValueError, OverflowError):  # a zone can push year 1 or 9999 off the calendar
        raise BadRequest(
            f"{name} must be an ISO 8601 date or time, got {clip(value, 40)!r}",
            errors=[{"field": name, "value": clip(value, 40)}],
            reason="bad_query",
        ) from None
    if not EARLIEST_MS <= ms <= LATEST_MS:
        earliest, latest = ms_to_iso(EARLIEST_MS), ms_to_iso(LATEST_MS)
        raise BadRequest(
            f"{name} must be from {earliest} to {latest}, got {clip(value, 40)!r}",
            errors=[
                {"field": name, "value": clip(value, 40), "earliest": earliest, "latest": latest}
            ],
            reason="bad_query",
        )
    return ms


def parse_property_path(name: str, *, field: str | None = None) -> PropertyPath:
    """`properties.customer.email` to ('customer', 'email'); a 400 if it is not such a path.
    `field` is the parameter that carried the path as its value (`by`, `distinct`); without
    it the path is the parameter's own name."""

    def bad(problem: str) -> BadRequest:
        if field is None:
            return _bad_param(name, problem)
        return BadRequest(
            f"{field} has {clip(name, 40)!r}, which {problem}",
            errors=[{"field": field, "value": clip(name, 40)}],
            reason="bad_query",
        )

    if not name.startswith(PROPERTY_PREFIX):
        raise bad("must start with 'properties.'")
    try:
        return paths.parse(
            name[len(PROPERTY_PREFIX) :], max_keys=MAX_PATH_KEYS, max_key_chars=MAX_KEY_CHARS
        )
    except paths.PathError as error:
        raise bad(
            f"{error}: a property path is like properties.customer.email, properties.items.0.sku "
            'or properties.items[*].sku (a key with a dot is a JSON string: properties."a.b")'
        ) from None


def property_filters(params: list[tuple[str, str]]) -> tuple[tuple[PropertyPath, str], ...]:
    """Every `properties.<path>=<value>` pair of a query string."""
    return tuple(
        (parse_property_path(name), value)
        for name, value in params
        if name.startswith(PROPERTY_PREFIX)
    )


def parse_group_by(raw: str | None) -> tuple[GroupBy, ...]:
    """`by=hour,type` to dimensions: at most two, at most one of them a time interval."""
    if not raw:
        return ()
    groups: list[GroupBy] = []
    for part in (p.strip() for p in outside_strings(raw, ",")):
        if part in _DIMENSIONS:
            groups.append(GroupBy(part))  # type: ignore[arg-type]
        elif part.startswith(PROPERTY_PREFIX):
            groups.append(GroupBy("property", parse_property_path(part, field="by")))
        else:
            raise _bad_param(
                "by",
                f"has {clip(part, 40)!r}; use type, source, minute, hour, day or properties.<path>",
            )
    if len(groups) > 2 or len({g.label for g in groups}) != len(groups):
        raise _bad_param("by", "takes one or two different dimensions")
    if sum(g.dimension in TIME_DIMENSIONS for g in groups) > 1:
        raise _bad_param("by", "takes at most one time interval")
    return tuple(groups)


def outside_strings(text: str, separator: str) -> list[str]:
    """`text` split at each `separator` that is not inside a quoted key (a JSON string opening
    right after a dot; a `"` within a plain key opens nothing)."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for at, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"' and (quoted or text[at - 1 : at] == "."):
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:at])
            start = at + 1
    parts.append(text[start:])
    return parts


def encode_cursor(event_id: str) -> str:
    return base64.urlsafe_b64encode(event_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        event_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        event_id = ""
    if not _EVENT_ID.match(event_id):
        raise _bad_param("cursor", "is not a cursor this API gave out")
    return event_id


def _bad_param(name: str, problem: str) -> BadRequest:
    return BadRequest(f"{name} {problem}", errors=[{"field": name}], reason="bad_query")
