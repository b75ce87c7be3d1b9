"""Identification rules of a source, and applying them to one event's payload.

A rule says where in the payload an identifier of some kind sits (`customer.email` holds an
`email`), whether a missing profile is created for it, and optionally which event types it
applies to. A trait map copies payload paths into profile traits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventstitch.config import Config
from eventstitch.identity.normalise import JUNK_VALUES, junk_set, normalise
from eventstitch.storage.records import Claim, IdentificationRule, Identifier


def lookup(payload: Any, path: Sequence[str]) -> Any:
    """The value at a dotted path in nested objects, or None."""
    value = payload
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True, slots=True)
class Policy:
    """The identity settings that apply to every source."""

    single_valued: frozenset[str] = frozenset({"user_id"})
    shared: frozenset[str] = frozenset()
    junk: frozenset[str] = JUNK_VALUES
    default_region: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        return cls(
            single_valued=config.identity_single_valued_kinds,
            shared=config.identity_shared_kinds,
            junk=junk_set(config.identity_junk_values),
            default_region=config.phone_default_region or None,
        )


@dataclass(frozen=True, slots=True)
class Identification:
    """What an event's payload says about who it is, and which rules it could not use."""

    claim: Claim | None
    skipped: tuple[str, ...] = ()
    """Paths of rules whose list held several different values: such a list names several
    people (the recipients of a mail, say), so the rule identifies nobody on this event."""


def extract(
    properties: Mapping[str, Any],
    event_type: str,
    rules: Sequence[IdentificationRule],
    traits: Mapping[str, tuple[str, ...]],
    policy: Policy = Policy(),
) -> Claim | None:
    """The identifiers and traits an event carries under the source's rules; None if none."""
    return identify(properties, event_type, rules, traits, policy).claim


def identify(
    properties: Mapping[str, Any],
    event_type: str,
    rules: Sequence[IdentificationRule],
    traits: Mapping[str, tuple[str, ...]],
    policy: Policy = Policy(),
) -> Identification:
    """Apply the source's rules to one event's payload.

    A list at a rule's path counts only when all its usable elements are one value: taking
    each element as an identifier of the same person would merge different people into one
    profile, the worst mistake identity can make. A shared kind's value becomes a trait named
    after the kind instead of an identifier.
    """
    found: dict[Identifier, None] = {}  # an ordered set
    copied: dict[str, Any] = {}
    skipped: list[str] = []
    create = False
    for rule in rules:
        if not rule.applies_to(event_type):
            continue
        raw = lookup(properties, rule.path)
        values = {
            value: None
            for item in (raw if isinstance(raw, list) else [raw])
            if (
                value := normalise(
                    rule.kind, item, default_region=policy.default_region, junk=policy.junk
                )
            )
            is not None
        }
        if len(values) > 1:
            skipped.append(".".join(rule.path))
            continue
        for value in values:
            if rule.kind in policy.shared:
                copied[rule.kind] = value
                continue
            found[(rule.kind, value)] = None
            create = create or rule.create_profile
    for trait, path in traits.items():
        value = lookup(properties, path)
        if value is not None:
            copied[trait] = value
    claim = Claim(identifiers=tuple(found), create_profile=create, traits=copied) if found else None
    return Identification(claim, tuple(skipped))
