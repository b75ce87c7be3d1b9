"""Owners of identifiers as the SQLite writer last saw them: a hint for the fast path."""

from __future__ import annotations

from collections.abc import Iterable

from eventstitch.identity.resolution import Resolver
from eventstitch.storage.records import Claim, Identifier


class OwnerCache:
    """Which live profile owned an identifier when this writer last looked, so that a batch
    whose events only carry such identifiers is inserted linked in one statement, without the
    transaction that reads owners, decides and writes. It is only ever a hint: the insert
    checks each profile is still live in the same statement (`rows.CHECKED_KNOWN_INSERT`).
    Used by the writer thread alone."""

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._owner: dict[Identifier, str] = {}

    def links(
        self, claims: Iterable[tuple[int, Claim | None]]
    ) -> dict[int, tuple[str, str]] | None:
        """Each claim's profile and the identifier that links it, or None when any claim needs
        deciding (an identifier not known here, two owners, traits, a tracked profile)."""
        links: dict[int, tuple[str, str]] = {}
        owner_of = self._owner.get
        for index, claim in claims:
            if claim is None:
                continue
            if claim.traits or claim.profile_id or not claim.identifiers:
                return None
            first, *others = claim.identifiers
            owner = owner_of(first)
            if owner is None or any(owner_of(i) != owner for i in others):
                return None
            links[index] = (owner, f"{first[0]}:{first[1]}")
        return links or None

    def learn(self, resolver: Resolver) -> None:
        """Remember the owners a batch's decisions read or made."""
        if len(self._owner) > self.MAX_ENTRIES:
            self._owner.clear()
        plan = resolver.plan
        for identifier, owner in resolver.owner.items():
            self._owner[identifier] = plan.final(owner)

    def clear(self) -> None:
        self._owner.clear()
