"""What a backend may raise to a service; app.py maps each to its answer in one place."""

from __future__ import annotations

from eventstitch.storage.records import RefusalReason


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
