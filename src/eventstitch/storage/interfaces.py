"""What services know of storage: the `Storage` protocol and its stores.

A backend is a package beside this module that implements `Storage`; `open_storage` picks it
from the database URL's scheme. Records are in `records`, errors in `errors`; nothing here
knows SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from eventstitch.storage.errors import DuplicateDelivery
from eventstitch.storage.records import (
    Claim,
    CommitPosition,
    CommitSpan,
    CountQuery,
    CountResult,
    EventFilter,
    EventRecord,
    Identifier,
    MergeRecord,
    ProfileRecord,
    PropertyPath,
    RejectionBounds,
    RejectionFilter,
    RejectionRecord,
    SourceRecord,
    ValuesRow,
    Visit,
    VisitResult,
)


class SourceStore(Protocol):
    async def create(self, source: SourceRecord) -> SourceRecord: ...

    async def get(self, source_id: str) -> SourceRecord | None: ...

    async def get_by_key(self, write_key: str) -> SourceRecord | None:
        """The source whose write key, or previous write key, is `write_key` (indexed)."""
        ...

    async def list_all(self) -> list[SourceRecord]: ...

    async def list_page(self, *, limit: int, after: tuple[int, str] | None) -> list[SourceRecord]:
        """Oldest first (by creation time, then id), strictly after `after` when given."""
        ...

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

    async def append_group(
        self,
        items: Sequence[tuple[EventRecord, Claim | None, str | None]],
        *,
        accepted_kinds: frozenset[str],
    ) -> list[str | DuplicateDelivery | None]:
        """Commit events of one delivery (event, claim, delivery key) in one transaction, all
        or none: each one's profile, or DuplicateDelivery for an element seen before (it
        stores nothing). Raises as `append` when the group is refused."""
        ...

    async def get(self, event_id: str) -> EventRecord | None: ...

    async def list_page(
        self, event_filter: EventFilter, *, limit: int, before_id: str | None
    ) -> list[EventRecord]:
        """Newest first, ids strictly below `before_id` when given."""
        ...

    async def values_page(
        self,
        event_filter: EventFilter,
        paths: Sequence[PropertyPath],
        *,
        limit: int,
        before_id: str | None,
    ) -> list[ValuesRow] | None:
        """`list_page` reading only what an insight question needs: each event's id, type,
        source, receipt time, and the JSON text of the value at each path (None where the
        path is missing), taken out of the stored payload by the database. None when the
        backend cannot take one of these paths out exactly: then read `list_page`."""
        ...

    async def commit_span(
        self, event_filter: EventFilter, *, after: CommitPosition | None
    ) -> CommitSpan | None:
        """The span of commits after position `after` up to now, `(after, upto)`: a reader that
        kept what it read up to `upto` reads only later commits next time. The span starts
        from None (read everything up to `upto`) when `after` is None, or when the store went
        back behind `after` (its newest events were deleted): drop what was kept. None when
        the backend has no commit order (then read the tail whole each time, `values_page`)."""
        ...

    async def values_committed(
        self,
        event_filter: EventFilter,
        paths: Sequence[PropertyPath],
        *,
        span: CommitSpan,
        resume: CommitPosition | None,
        limit: int,
    ) -> tuple[list[ValuesRow], CommitPosition | None] | None:
        """`values_page` of the matching events committed within `span`: a page of at most
        `limit`, from `resume` (None: the first page), and where the next page resumes (None
        after the last). None as `values_page`."""
        ...

    async def count(self, event_filter: EventFilter, query: CountQuery) -> CountResult: ...

    async def track(self, visit: Visit) -> VisitResult:
        """Store a tracked visit in one transaction: check the source (a `tracker`), find or
        create the profile and session (a known session's profile wins; unknown ids get new
        ones), store the events, resolve their claims. Raises as `append`."""
        ...

    async def backfill(
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
