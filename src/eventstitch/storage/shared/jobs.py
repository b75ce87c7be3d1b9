"""The group-commit writers' jobs and how their results reach the waiting requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eventstitch.storage.records import Claim, EventRecord

log = logging.getLogger(__name__)

STOP = object()
"""Queued last by `stop`: the writer commits what is before it, then ends."""


@dataclass(slots=True)
class EventJob:
    event: EventRecord
    kinds: str
    """Accepted source kinds as ",webhook,", matched by the checked insert."""
    claim: Claim | None
    delivery_key: str | None
    future: asyncio.Future[Any]
    row: tuple[Any, ...] = ()
    """SQLite: the checked insert's bound values, built on the request's thread."""


@dataclass(slots=True)
class CallJob:
    """Any other write (sources, profiles, visits, backfill, refused requests); a failure
    undoes only itself (a savepoint) and is handed to its caller, not to the batch."""

    call: Callable[[Any], Any]
    future: asyncio.Future[Any]
    identity: bool = field(default=False)
    """PostgreSQL: it reads or writes profiles, so the batch holds the identity lock."""


Job = EventJob | CallJob


def settle(pairs: Iterable[tuple[asyncio.Future[Any], Any]]) -> None:
    """Hand each result (or exception) to its request; a cancelled request's write stands."""
    for future, result in pairs:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


def settle_jobs(batch: Iterable[Job], results: list[Any]) -> None:
    """`settle` on the event loop the jobs were queued from."""
    settle((job.future, result) for job, result in zip(batch, results, strict=True))


def settle_from_thread(batch: Iterable[Job], results: list[Any]) -> None:
    """`settle` from a writer thread: one call per waiting event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for job, result in zip(batch, results, strict=True):
        by_loop.setdefault(job.future.get_loop(), []).append((job.future, result))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle, pairs)
        except RuntimeError:  # the loop closed while its requests waited: nobody to answer
            log.warning("event loop closed before %d results could be delivered", len(pairs))
