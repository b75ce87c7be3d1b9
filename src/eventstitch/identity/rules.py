"""Identification rules of a source, and applying them to one event's payload.

A rule says where in the payload an identifier of some kind sits (`customer.email` holds an
`email`, `recipients[*].email` one per element), whether a missing profile is created for it,
and optionally which event types it applies to. A trait map copies payload paths into profile
traits. Paths are read with `paths.values` (see docs/identity.md, "Rule paths").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventstitch.config import Config
from eventstitch.identity.normalise import JUNK_VALUES, junk_set, normalise
from eventstitch.paths import Path, has_each, label, lookup, values
from eventstitch.storage.records import Claim, IdentificationRule, Identifier


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
    traits: Mapping[str, Path],
    policy: Policy = Policy(),
) -> Claim | None:
    """The identifiers and traits an event carries under the source's rules; None if none."""
    return identify(properties, event_type, rules, traits, policy).claim


def identify(
    properties: Mapping[str, Any],
    event_type: str,
    rules: Sequence[IdentificationRule],
    traits: Mapping[str, Path],
    policy: Policy = Policy(),
) -> Identification:
    """Apply the source's rules to one event's payload.

    A list at a rule's path, or the elements' values under its `[*]`, count only when all the
    usable ones are one value: taking each as an identifier of the same person would merge
    different people into one profile, the worst mistake identity can make. A shared kind's
    value becomes a trait named after the kind instead of an identifier. A trait through `[*]`
    is the list of the distinct values the elements hold.
    """
    found: dict[Identifier, None] = {}  # an ordered set
    copied: dict[str, Any] = {}
    skipped: list[str] = []
    create = False
    for rule in rules:
        if not rule.applies_to(event_type):
            continue
        found_values = list(values(properties, rule.path))
        raw = found_values if has_each(rule.path) else (found_values or [None])[0]
        usable = {
            value: None
            for item in (raw if isinstance(raw, list) else [raw])
            if (
                value := normalise(
                    rule.kind, item, default_region=policy.default_region, junk=policy.junk
                )
            )
            is not None
        }
        if len(usable) > 1:
            skipped.append(label(rule.path))
            continue
        for value in usable:
            if rule.kind in policy.shared:
                copied[rule.kind] = value
                continue
            found[(rule.kind, value)] = None
            create = create or rule.create_profile
    for trait, path in traits.items():
        trait_value: Any = (
            _distinct(values(properties, path)) or None
            if has_each(path)
            else lookup(properties, path)
        )
        if trait_value is not None:
            copied[trait] = trait_value
    claim = Claim(identifiers=tuple(found), create_profile=create, traits=copied) if found else None
    return Identification(claim, tuple(skipped))


def _distinct(found: Iterable[Any]) -> list[Any]:
    """The distinct non-null values found, in the order met (1 and true stay apart)."""
    kept: list[Any] = []
    for value in found:
        if value is not None and not any(_same(value, k) for k in kept):
            kept.append(value)
    return kept


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b
