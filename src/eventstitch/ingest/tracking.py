"""Reading the tracker payload of `POST /track` (Tracardi's shape); what it ignores it keeps quiet.

Trackers send more than we use (`metadata`, `request`, `options.profile`, ...): a compatible
server ignores unknown fields instead of refusing them. What we use is checked precisely and
each refusal names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from eventstitch.errors import PayloadTooLarge, Unprocessable, clip

MAX_CLIENT_EVENT_ID = 128


@dataclass(frozen=True, slots=True)
class TrackedEventIn:
    type: str
    properties: dict[str, Any]
    context: dict[str, Any]
    client_id: str | None
    tags: list[str]


@dataclass(frozen=True, slots=True)
class TrackPayload:
    source_id: str
    profile_id: str | None
    session_id: str | None
    profile_less: bool
    context: dict[str, Any]
    properties: dict[str, Any]
    events: list[TrackedEventIn]


def _bad(field: str, problem: str) -> Unprocessable:
    return Unprocessable(f"{field} {problem}", errors=[{"field": field}], reason="bad_payload")


def _object(value: Any, field: str, *, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(field, "must be an object")
    return value


def _id(container: Any, field: str, *, required: bool = False) -> str | None:
    holder = _object(container, field, required=required)
    value = holder.get("id")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise _bad(f"{field}.id", "must be a string of 1 to 128 characters")
    return value


def _client_event_id(value: Any, field: str) -> str | None:
    """The tracker's own id of an event, kept as text: an integer becomes its digits (some
    trackers count events); any other non-string (a float, a boolean, an object, a list) is
    refused, never stored as a rendering of it. An empty one is no id."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLIENT_EVENT_ID:
        raise _bad(
            field,
            f"must be a string of 1 to {MAX_CLIENT_EVENT_ID} characters or an integer,"
            f" got {clip(value, 40)}",
        )
    return value


def parse_track_payload(body: Any, *, profile_less_query: bool, max_events: int) -> TrackPayload:
    """The parts of a tracker payload that Eventstitch uses, checked."""
    payload = _object(body, "body", required=True)
    events_in = payload.get("events")
    if not isinstance(events_in, list) or not events_in:
        raise _bad("events", "must be a non-empty list")
    if len(events_in) > max_events:
        raise Unprocessable(
            f"events holds {len(events_in)} events; at most {max_events} per call",
            errors=[{"field": "events", "count": len(events_in), "limit": max_events}],
            reason="too_many_events",
        )
    events = []
    for index, item in enumerate(events_in):
        field = f"events[{index}]"
        event = _object(item, field, required=True)
        event_type = event.get("type")
        if not isinstance(event_type, str) or not event_type.strip():
            raise _bad(f"{field}.type", f"must be a non-empty string, got {clip(event_type, 40)}")
        client_id = _client_event_id(event.get("id"), f"{field}.id")
        tags = event.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _bad(f"{field}.tags", "must be a list of strings")
        events.append(
            TrackedEventIn(
                type=event_type,
                properties=_object(event.get("properties"), f"{field}.properties"),
                context=_object(event.get("context"), f"{field}.context"),
                client_id=client_id,
                tags=tags,
            )
        )
    profile_less = payload.get("profile_less", False) is True or profile_less_query
    return TrackPayload(
        source_id=_id(payload.get("source"), "source", required=True) or "",
        profile_id=_id(payload.get("profile"), "profile"),
        session_id=_id(payload.get("session"), "session"),
        profile_less=profile_less,
        context=_object(payload.get("context"), "context"),
        properties=_object(payload.get("properties"), "properties"),
        events=events,
    )


def check_stored_size(payload: TrackPayload, shared_context: dict[str, Any], *, limit: int) -> int:
    """The bytes the call's events would store, refused (413) over `limit`. Every event
    carries `shared_context` (headers, the call's context and properties), so a small call
    with many events could otherwise write hundreds of times its own size. Measured without
    building the copies: the shared part once, times the events."""
    shared = len(orjson.dumps(shared_context))
    total = 0
    for item in payload.events:
        total += shared + len(orjson.dumps(item.properties)) + len(orjson.dumps(item.context))
        total += len(orjson.dumps(item.tags)) + len(item.client_id or "")
    if total > limit:
        raise PayloadTooLarge(
            f"this call would store {total} bytes over its {len(payload.events)} events (each "
            f"carries the call's context, properties and headers); at most {limit} per call",
            errors=[{"field": "events", "stored_bytes": total, "limit": limit}],
            reason="track_too_large",
        )
    return total
