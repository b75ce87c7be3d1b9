"""The answers of the ingest routes, shared by the routes and by the replay of a rejection
(which answers what the ingest answer would have been)."""

from __future__ import annotations

from typing import Any

from eventstitch.ingest.schemas import RepeatedDelivery
from eventstitch.storage.records import EventRecord, VisitResult


def collect_answer(
    events: list[EventRecord], repeats: list[RepeatedDelivery | None], split: bool
) -> dict[str, Any]:
    """The answer of the webhook bridge for a stored (or repeated) delivery: one event's, or
    every id of a split delivery in order (`duplicates`: how many were stored before)."""
    if split:
        return {
            "ok": True,
            "ids": [e.id for e in events],
            "types": [e.type for e in events],
            "profile_less": True,
            "profile_ids": [e.profile_id for e in events],
            "duplicates": sum(repeat is not None for repeat in repeats),
        }
    event, duplicate = events[0], repeats[0]
    answer: dict[str, Any] = {
        "ok": True,
        "id": event.id,
        "type": event.type,
        "profile_less": True,
        "profile_id": event.profile_id,
    }
    if duplicate is not None:
        answer["duplicate"] = True
        answer["body_differs"] = duplicate.body_differs
    return answer


def track_answer(result: VisitResult, events: list[EventRecord]) -> dict[str, Any]:
    """The answer of `/track` for a stored visit."""
    return {
        "ok": True,
        "source": {"id": events[0].source_id},
        "profile": {"id": result.profile_id} if result.profile_id else None,
        "session": {"id": result.session_id} if result.session_id else None,
        "profile_less": events[0].profile_less,
        "events": [
            {"id": e.id, "type": e.type, "profile_id": p}
            for e, p in zip(events, result.event_profiles, strict=True)
        ],
    }
