"""What services know of storage: records, filters, errors and the `Storage` protocol.

A backend is a module in this folder that implements `Storage`; `open_storage` picks it from the
database URL's scheme. Nothing here knows SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SourceKind = Literal["webhook", "tracker", "system"]
RefusalReason = Literal["unknown_source", "disabled_source", "wrong_source_kind"]


Identifier = tuple[str, str]
"""(kind, normalised value), e.g. ("email", "a@a.com")."""


@dataclass(frozen=True, slots=True)
class IdentificationRule:
    """Where a source's payloads carry an identifier of some kind."""

    path: tuple[str, ...]
    kind: str
    create_profile: bool = False
    event_types: tuple[str, ...] = ()

    def applies_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True, slots=True)
class SignatureRule:
    """How a webhook source's deliveries are signed, and the secrets that may have signed them."""

    preset: str
    """github, stripe, shopify, standard_webhooks, hmac or token."""
    secrets: tuple[str, ...]
    """One, or two while a secret is being rotated: either verifies."""
    header: str = ""
    """Lower-case header name (hmac and token presets; the others have their own)."""
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    tolerance_seconds: int = 300
    """How far a signed timestamp may be from now (stripe, standard_webhooks)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A source's own request rate limit; `per_second` 0 means unlimited."""

    per_second: float
    burst: int = 0
    """Requests allowed at once; 0: the rate rounded up, at least 1."""


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
    traits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Profile trait name to payload path."""
    delivery_id_path: tuple[str, ...] = ()
    """Where the payload carries the sender's delivery id (Stripe's `id`), if anywhere."""
    signature: SignatureRule | None = None
    rate_limit: RateLimit | None = None
    """None: the default of the settings."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What one event says about who it belongs to, under its source's rules."""

    identifiers: tuple[Identifier, ...]
    create_profile: bool = False
    traits: Mapping[str, Any] = field(default_factory=dict)
    profile_id: str | None = None
    """The profile the event already belongs to (tracked events): it takes the identifiers."""


@dataclass(frozen=True, slots=True)
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


PropertyPath = tuple[str, ...]


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
            return "properties." + ".".join(self.path)
        return self.dimension


@dataclass(frozen=True, slots=True)
class CountQuery:
    """Counts grouped by up to two dimensions, optionally with distinct values of a property."""

    group_by: tuple[GroupBy, ...]
    distinct: PropertyPath | None = None
    max_rows: int = 10_000


@dataclass(frozen=True, slots=True)
class CountRow:
    """One group: its key per dimension (time buckets as Unix ms), its count and distinct count."""

    keys: tuple[Any, ...]
    count: int
    distinct: int | None = None


@dataclass(slots=True)
class CountResult:
    rows: list[CountRow] = field(default_factory=list)
    total: int = 0
    from_rollup: bool = False
    truncated: bool = False


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
    """How many rejections are kept at most, and the oldest receipt time kept."""

    max_rows: int
    min_received_ms: int


class StorageError(Exception):
    """Base of what a backend may raise to a service."""


class SourceRefused(StorageError):
    """The event's source is unknown, disabled or of the wrong kind at commit time."""

    def __init__(self, source_id: str, reason: RefusalReason) -> None:
        super().__init__(f"source {source_id!r}: {reason}")
        self.source_id = source_id
        self.reason: RefusalReason = reason


class DuplicateDelivery(StorageError):
    """The source already delivered this delivery id within the window: nothing new stored."""

    def __init__(self, original_event_id: str) -> None:
        super().__init__(f"duplicate of {original_event_id}")
        self.original_event_id = original_event_id


class QueueFull(StorageError):
    """The writer's bounded queue is full: the caller should answer 503."""


class StorageUnavailable(StorageError):
    """A commit failed (disk full, database locked too long); nothing of it was stored."""


class DuplicateSource(StorageError):
    """A source with that id exists already."""


class QueryTimeout(StorageError):
    """A read ran past the query time limit and was stopped."""


class SourceStore(Protocol):
    async def create(self, source: SourceRecord) -> SourceRecord: ...

    async def get(self, source_id: str) -> SourceRecord | None: ...

    async def list_all(self) -> list[SourceRecord]: ...

    async def update(
        self, source_id: str, changes: dict[str, Any], updated_ms: int
    ) -> SourceRecord | None: ...

    async def delete(self, source_id: str) -> bool: ...


class EventStore(Protocol):
    async def append(
        self,
        event: EventRecord,
        *,
        accepted_kinds: frozenset[str],
        claim: Claim | None = None,
        delivery_key: str | None = None,
    ) -> str | None:
        """Commit one event durably (group commit), after re-checking its source in the same
        transaction, and resolve its claim there (see identity.resolution). Returns the profile
        it was linked to, if any. With a `delivery_key` seen from the same source within the
        idempotency window, stores nothing and raises DuplicateDelivery. Raises QueueFull,
        SourceRefused or StorageUnavailable."""
        ...

    async def get(self, event_id: str) -> EventRecord | None: ...

    async def list_page(
        self, event_filter: EventFilter, *, limit: int, before_id: str | None
    ) -> list[EventRecord]:
        """Newest first, ids strictly below `before_id` when given."""
        ...

    async def count(self, event_filter: EventFilter, query: CountQuery) -> CountResult: ...

    async def track(self, visit: Visit) -> VisitResult:
        """Store a tracked visit in one transaction: check the source (a `tracker`), find or
        create the profile and session (a known session's profile wins; unknown ids get new
        ones), store the events, resolve their claims. Raises as `append`."""
        ...

    async def reclaim(
        self, items: list[tuple[str, int, Claim]], *, checkpoint: tuple[str, str | None]
    ) -> int:
        """Resolve claims for stored events (event id, received ms, claim) in one transaction,
        as at ingest (profiles may be created), and set the named checkpoint (None clears it)
        in the same transaction. Returns how many of them are now linked to a profile."""
        ...

    async def checkpoint(self, name: str) -> str | None:
        """The value of a named checkpoint, if set."""
        ...

    async def import_batch(self, events: list[EventRecord]) -> int:
        """Insert events as they are (ids and times kept) in one transaction, with their rollup
        counts, skipping ids already stored; no source check. Returns how many were new."""
        ...


class RejectionStore(Protocol):
    async def add(
        self,
        rejections: Sequence[RejectionRecord],
        *,
        bounds: RejectionBounds,
        lost: Mapping[str, int],
    ) -> dict[str, int]:
        """Insert rejections (ids already stored are skipped), then delete those older than
        the bounds allow and the oldest beyond `max_rows`, and add what was deleted and `lost`
        (dropped before reaching storage, by cause) to the drop totals, all in one transaction.
        Returns what was deleted now by cause (`max_age`, `max_rows`)."""
        ...

    async def get(self, rejection_id: str) -> RejectionRecord | None: ...

    async def list_page(
        self, rejection_filter: RejectionFilter, *, limit: int, before_id: str | None
    ) -> list[RejectionRecord]:
        """Newest first, ids strictly below `before_id` when given; bodies left out."""
        ...

    async def dropped(self) -> dict[str, int]:
        """Rejections not kept since the table was created, by cause."""
        ...

    async def claim_replay(self, rejection_id: str, *, at_ms: int) -> bool:
        """Mark a rejection replayed unless it is already; False if it was (or is gone)."""
        ...

    async def finish_replay(self, rejection_id: str, *, event_ids: tuple[str, ...] | None) -> None:
        """Record the events a claimed replay stored, or give the claim back (None)."""
        ...


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


class ProfileStore(Protocol):
    async def get(self, profile_id: str) -> ProfileRecord | None: ...

    async def find(self, identifier: Identifier) -> ProfileRecord | None:
        """The live profile that owns an identifier."""
        ...

    async def merges(self, profile_id: str) -> list[MergeRecord]:
        """Merges done into or from this profile, and merges refused for it, oldest first."""
        ...

    async def list_page(self, *, limit: int, after_id: str | None) -> list[ProfileRecord]:
        """Every profile (merged ones too) in id order, after `after_id` when given."""
        ...

    async def import_batch(self, profiles: list[ProfileRecord]) -> int:
        """Insert profiles as they are, with their identifiers, skipping profile ids already
        stored and identifiers already owned. Returns how many profiles were new."""
        ...

    async def erase(self, profile_id: str) -> tuple[int, int]:
        """Delete a profile, the profiles merged into it, their identifiers, sessions and
        events. Returns (profiles removed, events removed)."""
        ...


class Storage(Protocol):
    @property
    def sources(self) -> SourceStore: ...

    @property
    def events(self) -> EventStore: ...

    @property
    def profiles(self) -> ProfileStore: ...

    @property
    def rejections(self) -> RejectionStore: ...

    async def start(self) -> None:
        """Open connections, run pending migrations, start the writer."""
        ...

    async def close(self) -> None:
        """Finish queued writes, stop the writer, close connections."""
        ...

    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied now."""
        ...

    async def ping(self) -> None:
        """Raise StorageUnavailable if the database cannot be read."""
        ...

    def queue_depth(self) -> int: ...
