"""The steps around an identity decision that both backends take alike: which claims a visit
or a backfill brings, and what the decision means for them. Pure; the SQL is the backend's."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from eventstitch.identity.resolution import ClaimItem, Plan, ProfileState
from eventstitch.storage.records import Claim, EventRecord, Identifier


def visit_claims(
    events: Sequence[EventRecord], claims: Sequence[Claim | None], profile_id: str | None
) -> list[tuple[int, ClaimItem]]:
    """A visit's claims by event position, anchored to the visit's profile."""
    return [
        (i, ClaimItem(e.id, e.received_ms, dataclasses.replace(claim, profile_id=profile_id)))
        for i, (e, claim) in enumerate(zip(events, claims, strict=True))
        if claim is not None
    ]


def follow_plan(
    plan: Plan, items: Iterable[tuple[int, ClaimItem]], links: list[str | None]
) -> None:
    """Point each claimed event's link at the profile the plan left it with."""
    for index, item in items:
        link = plan.links.get(item.event_id)
        if link is not None:
            links[index] = plan.final(link.profile_id)


def anchored(items: Iterable[ClaimItem], owners: Mapping[str, str | None]) -> list[ClaimItem]:
    """A backfill's claims for the events still stored, each anchored to its event's profile."""
    return [
        dataclasses.replace(
            item, claim=dataclasses.replace(item.claim, profile_id=owners.get(item.event_id))
        )
        for item in items
        if item.event_id in owners
    ]


def linked_after(items: Iterable[ClaimItem], owners: Mapping[str, str | None], plan: Plan) -> int:
    """How many of a backfill's events have a profile now."""
    return sum(1 for item in items if owners[item.event_id] or item.event_id in plan.links)


def stored_claims(
    found: Mapping[str, int],
    carried: Mapping[str, list[tuple[int, Identifier]]],
    traits: Mapping[str, dict[str, Any]],
) -> list[ClaimItem]:
    """Stored events' claims, rebuilt from what they carried (identifiers by position, and
    traits), oldest first, as they arrived."""
    return [
        ClaimItem(
            event_id,
            found[event_id],
            Claim(
                identifiers=tuple(i for _, i in sorted(carried[event_id])),
                traits=traits.get(event_id, {}),
            ),
            stored=True,
        )
        for event_id in sorted(found)
    ]


def owners_from_rows(rows: Iterable[Sequence[Any]]) -> list[ProfileState]:
    """Profiles from (id, created_ms, traits, trait_events, kind, value) rows, one row per
    identifier held, each profile with all its identifiers."""
    profiles: dict[str, ProfileState] = {}
    for profile_id, created_ms, traits, trait_events, kind, value in rows:
        profile = profiles.get(profile_id)
        if profile is None:
            profile = profiles[profile_id] = ProfileState(
                profile_id, created_ms, {}, orjson.loads(traits), orjson.loads(trait_events)
            )
        profile.identifiers.setdefault(kind, set()).add(value)
    return list(profiles.values())
