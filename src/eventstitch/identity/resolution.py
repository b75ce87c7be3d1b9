"""Deciding who events belong to: the identity plan for one write batch. Pure, no I/O.

A storage backend feeds the resolver the current owners of the identifiers it is about to
see, asks it to resolve each claim in order, and then applies the resulting plan inside the same
transaction as the events. Keeping the decisions here means every backend decides alike; the
backends only read owners and write the plan.

The rules, in order, for one claim:
1. No identifier has an owner: create a profile if a rule asked for it (never for a stored
   event re-examined later), and give it every identifier of the claim.
2. One owner: link the event to it and give it the identifiers nobody owns yet.
3. Several owners: merge them into the oldest (creation time, then id), unless two of them hold
   different values of a single-valued kind: then they stay apart, the refusal is recorded, and
   the event goes to the oldest.
An event that already belongs to a profile (a tracked one, or a linked one a backfill re-reads)
stays with it, or with the profile it was merged into: its row is not relinked.
A profile never takes a second value of a single-valued kind; that identifier stays unowned.
A trait keeps the value of the newest event that carried it, whatever order events reach the
profile in (a backfill reads newest first; a stored event may be linked after newer ones).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventstitch.ids import id_floor, new_event_id
from eventstitch.storage.records import Claim, EventRecord, Identifier


@dataclass
class ProfileState:
    """A live profile as the resolver sees it."""

    id: str
    created_ms: int
    identifiers: dict[str, set[str]] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    trait_events: dict[str, str] = field(default_factory=dict)
    """Per trait, the id of the event its value came from (ids sort by receipt time)."""

    def values_of(self, kind: str) -> set[str]:
        return self.identifiers.get(kind, set())


@dataclass(frozen=True, slots=True)
class ClaimItem:
    """One event to resolve: a new one from this batch, or a stored one re-examined."""

    event_id: str
    received_ms: int
    claim: Claim
    stored: bool = False


@dataclass(frozen=True, slots=True)
class Merge:
    survivor: str
    merged: str
    event_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class RefusedMerge:
    profiles: tuple[str, str]
    kind: str
    event_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Link:
    profile_id: str
    converted_by: Identifier


@dataclass
class Plan:
    """What to write: profiles created, identifiers given, merges, event links, traits."""

    created: dict[str, ProfileState] = field(default_factory=dict)
    attached: list[tuple[Identifier, str]] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    refused: list[RefusedMerge] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    """Profiles whose traits changed (their final traits are in the resolver's state)."""
    redirect: dict[str, str] = field(default_factory=dict)

    def final(self, profile_id: str) -> str:
        """Where a profile id ends up after this plan's merges."""
        while profile_id in self.redirect:
            profile_id = self.redirect[profile_id]
        return profile_id

    def system_events(self) -> list[EventRecord]:
        """What this plan did, as events of the built-in `system` source."""
        happenings: list[tuple[str, dict[str, Any]]] = []
        for profile in self.created.values():
            identifiers = [f"{k}:{v}" for k, values in profile.identifiers.items() for v in values]
            happenings.append(
                ("profile-created", {"profile_id": profile.id, "identifiers": sorted(identifiers)})
            )
        for merge in self.merges:
            happenings.append(
                (
                    "profiles-merged",
                    {
                        "survivor": merge.survivor,
                        "merged": merge.merged,
                        "event_id": merge.event_id,
                    },
                )
            )
        for refused in self.refused:
            happenings.append(
                (
                    "profile-merge-refused",
                    {
                        "profiles": list(refused.profiles),
                        "kind": refused.kind,
                        "event_id": refused.event_id,
                    },
                )
            )
        return [system_event(event_type, properties) for event_type, properties in happenings]


SYSTEM_SOURCE_ID = "system"


def system_event(event_type: str, properties: dict[str, Any]) -> EventRecord:
    """One event of Eventstitch's own, from the read-only `system` source."""
    event_id, received_ms = new_event_id()
    return EventRecord(
        id=event_id,
        type=event_type,
        source_id=SYSTEM_SOURCE_ID,
        received_ms=received_ms,
        profile_less=True,
        profile_id=None,
        session_id=None,
        properties=properties,
        context={"origin": "eventstitch"},
    )


PROFILE_HAPPENINGS = ("profile-created", "profiles-merged", "profile-merge-refused")
"""System event types that name profiles (and, on creation, their identifiers)."""


_CLOCK_SLACK_MS = 3_600_000


def happenings_since(created_ms: int) -> str:
    """The lowest event id a happening about a profile created at `created_ms` can have: it is
    recorded after the profile exists (with an hour's slack for a clock stepped back), so an
    erasure reads only the system events since, not all of them."""
    return id_floor(max(0, created_ms - _CLOCK_SLACK_MS))


def redacted(
    event_type: str, properties: Mapping[str, Any], erased: Container[str]
) -> dict[str, Any] | None:
    """A profile happening's properties with erased profiles taken out, or None when it names
    none of them. The event itself stays, so counts of creations and merges still add up; it
    no longer says who, nor which (deleted) event caused it, and says that it was erased."""
    if event_type == "profile-created" and properties.get("profile_id") in erased:
        return {"profile_id": None, "identifiers": [], "erased": True}
    if event_type == "profiles-merged" and (
        properties.get("survivor") in erased or properties.get("merged") in erased
    ):
        return {"survivor": None, "merged": None, "event_id": None, "erased": True}
    profiles = properties.get("profiles")
    if (
        event_type == "profile-merge-refused"
        and isinstance(profiles, list)
        and any(p in erased for p in profiles)
    ):
        # The other profile is someone else, who keeps their id here.
        return {
            "profiles": [None if p in erased else p for p in profiles],
            "kind": properties.get("kind"),
            "event_id": None,
            "erased": True,
        }
    return None


class Resolver:
    """Holds the owners known so far and the plan being built; one per write transaction."""

    def __init__(self, *, single_valued: frozenset[str], new_profile_id: Callable[[], str]) -> None:
        self.single_valued = single_valued
        self.new_profile_id = new_profile_id
        self.profiles: dict[str, ProfileState] = {}
        self.owner: dict[Identifier, str] = {}
        self.known: set[Identifier] = set()
        self.plan = Plan()
        self._fresh: list[Identifier] = []
        self.refused_before: set[tuple[str, str, frozenset[str]]] = set()
        """Refusals already recorded, as (event id, kind, the two profiles): a backfill that
        meets the same event again must not log its refusal twice."""

    def unknown(self, identifiers: Iterable[Identifier]) -> set[Identifier]:
        """Identifiers whose owner the backend has not told us yet."""
        return {i for i in identifiers if i not in self.known}

    def load(self, asked: Iterable[Identifier], owners: Iterable[ProfileState]) -> None:
        """Record what storage says: `owners` hold some of `asked` (and all their identifiers)."""
        self.known.update(asked)
        for profile in owners:
            if profile.id in self.profiles:
                continue
            self.profiles[profile.id] = profile
            for kind, values in profile.identifiers.items():
                for value in values:
                    self.owner[(kind, value)] = profile.id
                    self.known.add((kind, value))

    def take_fresh(self) -> list[Identifier]:
        """Identifiers that got an owner since the last call: stored profile-less events that
        carry them should be re-examined."""
        fresh, self._fresh = self._fresh, []
        return fresh

    def resolve(self, item: ClaimItem) -> Link | None:
        """Decide for one event; the decision is added to the plan and returned."""
        if item.event_id in self.plan.links:
            return self.plan.links[item.event_id]
        claim = item.claim
        anchor = self.plan.final(claim.profile_id) if claim.profile_id else None
        if anchor not in self.profiles:
            anchor = None
        owners = _unique(
            ([anchor] if anchor else [])
            + [self.owner[i] for i in claim.identifiers if i in self.owner]
        )
        if not owners:
            if not claim.create_profile or item.stored:
                return None
            target = self._create(item.received_ms)
        else:
            ordered = sorted((self.profiles[p] for p in owners), key=lambda p: (p.created_ms, p.id))
            for other in ordered[1:]:
                self._merge(ordered[0], other, item)
            # The event's row already names its profile and is only updated when it has none:
            # where a guard kept that profile apart from the oldest owner, the event stays.
            target = self.profiles[self.plan.final(anchor)] if anchor else ordered[0]
        # What linked the event is an identifier the profile held before this event; one it
        # brings along is only the reason when the profile is new.
        by = self._held_by(claim, target)
        for identifier in claim.identifiers:
            if identifier not in self.owner:
                self._attach(target, identifier)
        if by is None:
            by = self._held_by(claim, target) or claim.identifiers[0]
        self._take_traits(target, claim.traits, item.event_id)
        for trait, value in claim.traits_once.items():
            if trait not in target.traits:  # set once: never overwrites
                target.traits[trait] = value
                target.trait_events[trait] = item.event_id
                self.plan.touched.add(target.id)
        link = Link(target.id, by)
        self.plan.links[item.event_id] = link
        return link

    def _held_by(self, claim: Claim, profile: ProfileState) -> Identifier | None:
        return next((i for i in claim.identifiers if self.owner.get(i) == profile.id), None)

    def _take_traits(self, profile: ProfileState, traits: Mapping[str, Any], event_id: str) -> None:
        """Copy an event's traits, except where the profile holds a newer event's value."""
        for trait, value in traits.items():
            if profile.trait_events.get(trait, "") > event_id:
                continue
            profile.traits[trait] = value
            profile.trait_events[trait] = event_id
            self.plan.touched.add(profile.id)

    def _create(self, created_ms: int) -> ProfileState:
        profile = ProfileState(self.new_profile_id(), created_ms)
        self.profiles[profile.id] = profile
        self.plan.created[profile.id] = profile
        return profile

    def _attach(self, profile: ProfileState, identifier: Identifier) -> None:
        kind, value = identifier
        held = profile.values_of(kind)
        if kind in self.single_valued and held and value not in held:
            return  # a second user_id would silently make two people one
        profile.identifiers.setdefault(kind, set()).add(value)
        self.owner[identifier] = profile.id
        self.known.add(identifier)
        self.plan.attached.append((identifier, profile.id))
        self._fresh.append(identifier)

    def _merge(self, survivor: ProfileState, other: ProfileState, item: ClaimItem) -> None:
        if other.id == survivor.id or other.id not in self.profiles:
            return
        for kind in self.single_valued:
            mine, theirs = survivor.values_of(kind), other.values_of(kind)
            if mine and theirs and mine != theirs:
                seen = (item.event_id, kind, frozenset((survivor.id, other.id)))
                if seen not in self.refused_before:
                    self.refused_before.add(seen)
                    self.plan.refused.append(
                        RefusedMerge((survivor.id, other.id), kind, item.event_id, item.received_ms)
                    )
                return
        for kind, values in other.identifiers.items():
            survivor.identifiers.setdefault(kind, set()).update(values)
            for value in values:
                self.owner[(kind, value)] = survivor.id
        for trait, value in other.traits.items():
            if trait not in survivor.traits:  # the survivor's own values win
                survivor.traits[trait] = value
                if trait in other.trait_events:
                    survivor.trait_events[trait] = other.trait_events[trait]
        self.plan.touched.add(survivor.id)
        self.plan.touched.discard(other.id)
        self.plan.redirect[other.id] = survivor.id
        if self.plan.created.pop(other.id, None) is None:  # only stored profiles need a merge
            self.plan.merges.append(Merge(survivor.id, other.id, item.event_id, item.received_ms))
        for event_id, link in self.plan.links.items():
            if link.profile_id == other.id:
                self.plan.links[event_id] = Link(survivor.id, link.converted_by)
        del self.profiles[other.id]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
