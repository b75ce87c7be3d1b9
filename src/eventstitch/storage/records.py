"""What storage takes and gives back: records and filters, plain data that knows no SQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from eventstitch.frozen import frozen_record
from eventstitch.paths import Path, label

SourceKind = Literal["webhook", "tracker", "system"]
RefusalReason = Literal["unknown_source", "disabled_source", "wrong_source_kind"]


Identifier = tuple[str, str]
"""(kind, normalised value), e.g. ("email", "a@a.com")."""


@dataclass(frozen=True, slots=True)
class IdentificationRule:
    """Where a source's payloads carry an identifier of some kind."""

    path: Path
    kind: str
    create_profile: bool = False
    event_types: tuple[str, ...] = ()

    def applies_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True, slots=True)
class SignatureRule:
    """How a webhook source's deliveries are signed, and the secrets that may have signed them."""

    preset: str
    """A scheme of sources/signatures.py PRESETS: github, stripe, hmac, token, ..."""
    secrets: tuple[str, ...]
    """One, or two while a secret is being rotated: either verifies."""
    header: str = ""
    """Lower-case header name (hmac and token presets; the others have their own)."""
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    tolerance_seconds: int = 300
    """How far a signed timestamp may be from now (stripe, standard_webhooks)."""
    url: str = ""
    """twilio: the public URL the sender posts to, which its signature covers."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A source's own request rate limit; `per_second` 0 means unlimited."""

    per_second: float
    burst: int = 0
    """Requests allowed at once; 0: the rate rounded up, at least 1."""


@dataclass(frozen=True, slots=True)
class Shaping:
    """How a source's deliveries become events: where the type and the delivery id are, which
    array holds one event per element, what is removed, and how a form body is read. Paths are
    dotted payload paths; `header:<Name>` names a request header instead."""

    event_type_from: str | None = None
    split: str | None = None
    """`$`: the body is an array; else the path of the array, the rest kept under `_delivery`."""
    delivery_id_from: str | None = None
    redact: tuple[str, ...] = ()
    form_json_field: str | None = None
    bracket_keys: bool = False
    preset: str | None = None
    """The sender preset (sources/presets.py) the source was created from, shown and exported."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """An event source as stored."""

    id: str
    name: str
    kind: SourceKind
    enabled: bool
    description: str
    tags: tuple[str, ...]
    created_ms: int
    updated_ms: int
    identification: tuple[IdentificationRule, ...] = ()
    traits: Mapping[str, Path] = field(default_factory=dict)
    """Profile trait name to payload path."""
    delivery_id_path: tuple[str, ...] = ()
    """Where the payload carries the sender's delivery id (Stripe's `id`), if anywhere."""
    signature: SignatureRule | None = None
    rate_limit: RateLimit | None = None
    """None: the default of the settings."""
    shaping: Shaping | None = None
    write_key: str | None = None
    """Tracker sources: the key the analytics SDKs send (Basic auth, a header or the body)."""
    previous_write_key: str | None = None
    """The key a rotation replaced, still valid until `previous_key_until_ms`."""
    previous_key_until_ms: int | None = None

    def key_valid(self, key: str, now_ms: int) -> bool:
        """Whether `key` is this source's write key, or its previous one still in grace."""
        if self.write_key is not None and key == self.write_key:
            return True
        return (
            self.previous_write_key is not None
            and key == self.previous_write_key
            and self.previous_key_until_ms is not None
            and now_ms < self.previous_key_until_ms
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """What one event says about who it belongs to, under its source's rules."""

    identifiers: tuple[Identifier, ...]
    create_profile: bool = False
    traits: Mapping[str, Any] = field(default_factory=dict)
    profile_id: str | None = None
    """The profile the event already belongs to (tracked events): it takes the identifiers."""
    traits_once: Mapping[str, Any] = field(default_factory=dict)
    """Traits set only where the profile has none yet (PostHog's `$set_once`); applied when
    the event is linked at ingest, not remembered for a later retroactive link."""


@frozen_record
class EventRecord:
    """One stored event. `received_ms` is the time embedded in the UUIDv7 `id`."""

    id: str
    type: str
    source_id: str
    received_ms: int
    profile_less: bool
    profile_id: str | None
    session_id: str | None
    properties: dict[str, Any]
    context: dict[str, Any]
    converted_ms: int | None = None
    converted_by: str | None = None
    """The identifier ("kind:value") that linked a profile-less event to its profile."""


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """A profile with its identifiers; `merged_into` is set on a profile merged away."""

    id: str
    created_ms: int
    updated_ms: int
    traits: dict[str, Any]
    merged_into: str | None
    identifiers: tuple[Identifier, ...]


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """A merge done, or refused by a guard (`refused_kind` names the single-valued kind)."""

    survivor: str
    merged: str
    event_id: str | None
    at_ms: int
    refused_kind: str | None


PropertyPath = Path

ValuesRow = tuple[str, str, str, int, tuple[str | None, ...]]
"""An event as an insight question reads it from the store (`EventStore.values_page`): id,
type, source id, receipt time, and the JSON text at each path asked (None: missing)."""

CommitPosition = int | str
"""A place in a store's commit order (SQLite: a rowid; PostgreSQL: a snapshot's text)."""
CommitSpan = tuple[CommitPosition | None, CommitPosition]
"""Commit positions (after, upto]; after None: from the start. See `EventStore.commit_span`."""


def property_label(path: PropertyPath) -> str:
    """A path as a client writes it, `properties.a.b` (see `paths.label`)."""
    return "properties." + label(path)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a listing or a count covers; every field narrows, empty means all."""

    types: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    profile_less: bool | None = None
    profile_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    properties: tuple[tuple[PropertyPath, str], ...] = ()
    converted: bool | None = None


Dimension = Literal["type", "source", "minute", "hour", "day", "property", "converted_kind"]


@dataclass(frozen=True, slots=True)
class GroupBy:
    """One grouping dimension of a count; `path` only for `property`."""

    dimension: Dimension
    path: PropertyPath = ()

    @property
    def label(self) -> str:
        if self.dimension == "property":
            return property_label(self.path)
        return self.dimension


@dataclass(frozen=True, slots=True)
class CountQuery:
    """Counts grouped by up to two dimensions, optionally with distinct values of a property."""

    group_by: tuple[GroupBy, ...]
    distinct: PropertyPath | None = None
    max_rows: int = 10_000
    ordered: bool = True
    """Rows in the order of `count_order`; without it, in any order (for a caller that orders
    them itself and has no use for a truncated answer, whose rows are then any `max_rows`)."""


@dataclass(slots=True)
class CountRow:
    """One group: its key per dimension (time buckets as Unix ms), its count and distinct count."""

    keys: tuple[Any, ...]
    count: int
    distinct: int | None = None


@dataclass(slots=True)
class CountResult:
    """A grouped count kept column by column: the keys of each group, and its count and
    distinct count at the same place. A series by hour and type over 30 days is 14 420 groups,
    and an object for each, alive until the answer is made, was a fifth of its time in making
    and collecting them (docs/benchmarks.md)."""

    keys: list[tuple[Any, ...]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    distincts: list[int] | None = None
    """Each group's distinct count, when one was asked for."""
    total: int = 0
    from_rollup: bool = False
    truncated: bool = False

    @property
    def rows(self) -> list[CountRow]:
        """The groups one by one, for a caller that renders few."""
        distincts = self.distincts or [None] * len(self.keys)  # type: ignore[list-item]
        return list(map(CountRow, self.keys, self.counts, distincts))


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """One refused ingest request as kept for inspection and replay. `received_ms` is the time
    in the UUIDv7 `id`; `body` is None when a listing left it out; `body_size` is None when
    the body was never read (refused before it, or while reading it with no Content-Length)."""

    id: str
    received_ms: int
    route: str
    reason: str
    status: int
    message: str
    errors: list[dict[str, Any]]
    source_id: str | None
    method: str
    path: str
    query: str
    headers: dict[str, str]
    client: str | None
    body: bytes | None
    body_size: int | None
    body_truncated: bool
    replayed_ms: int | None = None
    replayed_event_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RejectionFilter:
    """Which rejections a listing covers; every field narrows, empty means all."""

    reasons: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RejectionBounds:
    """How many rejections are kept at most, how many of their bytes (each row's
    `stored_size`), and the oldest receipt time kept."""

    max_rows: int
    min_received_ms: int
    max_bytes: int = 256 << 20


@dataclass(frozen=True, slots=True)
class Visit:
    """One `/track` call: events of one source for one profile and session, or profile-less.

    `profile_hint` and `session_hint` are the ids the tracker sent; unknown ones are replaced.
    The events' profile and session fields are filled in by storage.
    """

    source_id: str
    profile_less: bool
    profile_hint: str | None
    session_hint: str | None
    events: tuple[EventRecord, ...]
    claims: tuple[Claim | None, ...]


@dataclass(frozen=True, slots=True)
class VisitResult:
    profile_id: str | None
    session_id: str | None
    event_profiles: tuple[str | None, ...]
    """The profile each event ended up linked to."""
