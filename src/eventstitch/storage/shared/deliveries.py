"""What both writers do alike with delivery ids inside one batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from eventstitch.storage.errors import DuplicateDelivery
from eventstitch.storage.records import EventRecord


class QueuedEvent(Protocol):
    @property
    def event(self) -> EventRecord: ...


def share_refusals(
    events: Sequence[tuple[int, QueuedEvent]],
    keyed: Sequence[tuple[int, QueuedEvent]],
    results: list[Any],
) -> None:
    """A later copy of a delivery in the batch was answered with the first copy's event; if
    the first copy was refused after all (its source changed), the copy gets the same
    refusal, never a duplicate of an event that is not stored."""
    in_batch = {job.event.id: index for index, job in events}
    for index, _ in keyed:
        answer = results[index]
        if isinstance(answer, DuplicateDelivery):
            first = in_batch.get(answer.original_event_id)
            if first is not None and isinstance(results[first], BaseException):
                results[index] = results[first]
