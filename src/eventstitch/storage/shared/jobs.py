"""The group-commit writers' jobs and how their results reach the waiting requests."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eventstitch.storage.errors import DuplicateDelivery
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
    group: int = 0
    """Non-zero: one of the events of one delivery (all with the same number), queued as one
    list and committed together or not at all."""


@dataclass(slots=True)
class CallJob:
    """Any other write (sources, profiles, visits, backfill, refused requests); a failure
    undoes only itself (a savepoint) and is handed to its caller, not to the batch."""

    call: Callable[[Any], Any]
    future: asyncio.Future[Any]
    identity: bool = field(default=False)
    """PostgreSQL: it reads or writes profiles, so the batch holds the identity lock."""


Job = EventJob | CallJob


async def group_outcomes(futures: list[asyncio.Future[Any]]) -> list[Any]:
    """The results of a group's jobs; the group's refusal (all share it) is raised, while a
    repeated element's DuplicateDelivery is an answer of its own."""
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, DuplicateDelivery):
            raise result
    return list(results)


def units(batch: list[Job]) -> list[list[Job]]:
    """The batch cut into what must be committed together: a group's jobs, or one job."""
    cut: list[list[Job]] = []
    for job in batch:
        if isinstance(job, EventJob) and job.group and cut and _grouped_with(cut[-1], job):
            cut[-1].append(job)
        else:
            cut.append([job])
    return cut


def _grouped_with(unit: list[Job], job: EventJob) -> bool:
    last = unit[-1]
    return isinstance(last, EventJob) and last.group == job.group


_GROUPS = itertools.count(1)


def group_jobs(jobs: list[EventJob]) -> list[EventJob]:
    """`jobs` marked as one group (a number no other group of this process has)."""
    number = next(_GROUPS)
    for job in jobs:
        job.group = number
    return jobs


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
