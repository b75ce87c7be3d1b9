"""Events with claims that the writer commits together: decisions made for the whole batch.

The SQLite writer decides who a batch's events belong to before it inserts them, so they go in
already linked. These tests pin what that must not change: an event of the batch left unlinked
is still linked when a later event of the same batch gives a profile its identifier, and an
event refused by its source in the same batch creates no profile and takes no identifier.
Each runs on every backend; the ones that need one batch for certain hold the SQLite writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstitch.config import load_config
from eventstitch.storage import open_storage
from eventstitch.storage.errors import SourceRefused, StorageUnavailable
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import Claim, EventRecord
from eventstitch.storage.sqlite.backend import SqliteStorage
from tests.storage.conftest import CONFIGS, Run, started_storage
from tests.storage.test_contract import WEBHOOK, add_sources, event, source

PHONE = ("phone", "+48601234567")
EMAIL = ("email", "a@a.com")


def phone_only() -> Claim:
    return Claim(identifiers=(PHONE,))


def email_and_phone() -> Claim:
    return Claim(identifiers=(EMAIL, PHONE), create_profile=True)


async def append_together(storage: Storage, pairs: list[tuple[EventRecord, Claim]]) -> list[Any]:
    return await asyncio.gather(
        *(storage.events.append(e, accepted_kinds=WEBHOOK, claim=c) for e, c in pairs),
        return_exceptions=True,
    )


def held_writer(storage: Storage) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Keep the SQLite writer busy in a transaction until the event is set, so that whatever
    is appended meanwhile is committed as one batch."""
    assert isinstance(storage, SqliteStorage)
    release, holding = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        holding.set()
        release.wait(timeout=10)

    write = asyncio.ensure_future(storage.db.write(hold))
    return release, write


def test_an_unlinked_event_is_linked_by_a_later_event_of_its_batch(
    storage: Storage, run: Run, backend: str
) -> None:
    add_sources(storage, run, "hooks")
    earlier, later = event(n=1), event(n=2)

    async def scenario() -> list[Any]:
        if backend != "sqlite":
            return await append_together(
                storage, [(earlier, phone_only()), (later, email_and_phone())]
            )
        release, write = held_writer(storage)
        await asyncio.sleep(0)  # the hold is queued first
        answers = asyncio.ensure_future(
            append_together(storage, [(earlier, phone_only()), (later, email_and_phone())])
        )
        await asyncio.sleep(0.05)  # both appends are queued behind the hold
        release.set()
        await write
        return await answers

    first, second = run(scenario())
    assert second is not None
    if backend == "sqlite":  # one batch: the answer already names the profile
        assert first == second
    stored = run(storage.events.get(earlier.id))
    assert stored is not None
    assert stored.profile_id == second
    assert stored.converted_by == "phone:+48601234567"
    profile = run(storage.profiles.find(PHONE))
    assert profile is not None
    assert profile.id == second


def test_a_refused_event_in_a_batch_with_claims_creates_no_profile(
    storage: Storage, run: Run, backend: str
) -> None:
    add_sources(storage, run, "hooks")
    run(storage.sources.create(source("off", enabled=False)))
    refused = event("off", n=0)
    refused_claim = Claim(identifiers=(("email", "refused@a.com"),), create_profile=True)
    kept = [event(n=n) for n in range(1, 6)]
    kept_claims = [
        Claim(identifiers=(("email", f"p{n}@a.com"),), create_profile=True) for n in range(1, 6)
    ]
    pairs = [(refused, refused_claim), *zip(kept, kept_claims, strict=True)]

    async def scenario() -> list[Any]:
        if backend != "sqlite":
            return await append_together(storage, pairs)
        release, write = held_writer(storage)
        await asyncio.sleep(0)
        answers = asyncio.ensure_future(append_together(storage, pairs))
        await asyncio.sleep(0.05)
        release.set()
        await write
        return await answers

    answers = run(scenario())
    assert isinstance(answers[0], SourceRefused)
    assert answers[0].reason == "disabled_source"
    assert run(storage.events.get(refused.id)) is None
    assert run(storage.profiles.find(("email", "refused@a.com"))) is None
    for e, answer, n in zip(kept, answers[1:], range(1, 6), strict=True):
        stored = run(storage.events.get(e.id))
        assert stored is not None
        assert stored.profile_id == answer
        profile = run(storage.profiles.find(("email", f"p{n}@a.com")))
        assert profile is not None
        assert profile.id == answer


@pytest.mark.parametrize("rounds", [20])
def test_batches_with_claims_link_every_event_once(storage: Storage, run: Run, rounds: int) -> None:
    """Many concurrent events with the same email: one profile, every event linked to it."""
    add_sources(storage, run, "hooks")
    pairs = [
        (event(n=n), Claim(identifiers=(EMAIL,), create_profile=True)) for n in range(rounds * 8)
    ]
    answers = run(append_together(storage, pairs))
    profile = run(storage.profiles.find(EMAIL))
    assert profile is not None
    assert set(answers) == {profile.id}
    for e, _ in pairs:
        stored = run(storage.events.get(e.id))
        assert stored is not None
        assert stored.profile_id == profile.id
        assert stored.converted_by == "email:a@a.com"
        assert stored.converted_ms is not None


# -- owners remembered by one process, changed by another ------------------------------------
# Each writer remembers who owned the identifiers it saw, and inserts the next events carrying
# only those identifiers linked in one statement. A second store on the same database stands
# in for a second process that changes the owner meanwhile.


@pytest.fixture
def two_processes(backend: str, tmp_path: Path, run: Run) -> Iterator[tuple[Storage, Storage]]:
    """Two stores on one database, each with its own writer, as two processes have."""
    with CONFIGS[backend](tmp_path) as config:
        first, second = open_storage(config), open_storage(config)
        run(first.start())
        run(second.start())
        try:
            yield first, second
        finally:
            run(second.close())
            run(first.close())


def linked_profile(storage: Storage, run: Run, e: EventRecord) -> str | None:
    stored = run(storage.events.get(e.id))
    assert stored is not None
    return stored.profile_id


def creating(*identifiers: tuple[str, str]) -> Claim:
    return Claim(identifiers=identifiers, create_profile=True)


def test_an_owner_erased_by_another_process_is_not_linked_to_again(
    two_processes: tuple[Storage, Storage], run: Run
) -> None:
    mine, other = two_processes
    add_sources(mine, run, "hooks")
    first, second, third = event(n=1), event(n=2), event(n=3)
    for e in (first, second):  # the second one is linked to an owner this writer knows
        run(mine.events.append(e, accepted_kinds=WEBHOOK, claim=creating(EMAIL)))
    erased = linked_profile(mine, run, first)
    assert erased is not None
    assert linked_profile(mine, run, second) == erased
    assert run(other.profiles.erase(erased))[0] == 1
    answer = run(mine.events.append(third, accepted_kinds=WEBHOOK, claim=creating(EMAIL)))
    assert answer is not None
    assert answer != erased
    assert linked_profile(mine, run, third) == answer
    profile = run(mine.profiles.find(EMAIL))
    assert profile is not None
    assert profile.id == answer
    assert run(mine.profiles.get(erased)) is None


def test_an_owner_merged_away_by_another_process_sends_events_to_the_survivor(
    two_processes: tuple[Storage, Storage], run: Run
) -> None:
    mine, other = two_processes
    add_sources(mine, run, "hooks")
    older, newer = event(n=1), event(n=2)
    run(other.events.append(older, accepted_kinds=WEBHOOK, claim=creating(PHONE)))
    run(mine.events.append(newer, accepted_kinds=WEBHOOK, claim=creating(EMAIL)))
    run(mine.events.append(event(n=3), accepted_kinds=WEBHOOK, claim=creating(EMAIL)))
    survivor = linked_profile(mine, run, older)
    merged = linked_profile(mine, run, newer)
    assert survivor is not None
    assert merged is not None
    assert survivor != merged
    # The other process sees one person carrying both: the newer profile merges into the older.
    both = event(n=4)
    assert run(other.events.append(both, accepted_kinds=WEBHOOK, claim=creating(EMAIL, PHONE))) == (
        survivor
    )
    after = event(n=5)
    assert run(mine.events.append(after, accepted_kinds=WEBHOOK, claim=creating(EMAIL))) == survivor
    assert linked_profile(mine, run, after) == survivor
    gone = run(mine.profiles.get(merged))
    assert gone is not None
    assert gone.merged_into == survivor


# -- the SQLite writer under failure and at its limits ---------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path, run: Run) -> Iterator[SqliteStorage]:
    with started_storage("sqlite", tmp_path, run) as storage:
        assert isinstance(storage, SqliteStorage)
        yield storage


def test_owners_of_a_rolled_back_batch_are_not_remembered(
    sqlite_store: SqliteStorage, run: Run
) -> None:
    """A batch merged two profiles and then failed: nothing of it stands, so an event that
    carries the merged-away profile's email still goes to that profile."""
    storage = sqlite_store
    add_sources(storage, run, "hooks")
    mail_p, mail_q = ("email", "p@a.com"), ("email", "q@a.com")
    p = run(storage.events.append(event(n=1), accepted_kinds=WEBHOOK, claim=creating(mail_p)))
    q = run(storage.events.append(event(n=2), accepted_kinds=WEBHOOK, claim=creating(mail_q)))
    run(
        storage.db.write(
            lambda conn: conn.execute(
                "CREATE TRIGGER fail_keys BEFORE INSERT ON delivery_keys"
                " BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
            )
        )
    )
    both = event(n=3)
    with pytest.raises(StorageUnavailable):
        run(
            storage.events.append(
                both, accepted_kinds=WEBHOOK, claim=creating(mail_p, mail_q), delivery_key="k1"
            )
        )
    run(storage.db.write(lambda conn: conn.execute("DROP TRIGGER fail_keys")))
    assert run(storage.events.get(both.id)) is None
    later = event(n=4)
    assert run(storage.events.append(later, accepted_kinds=WEBHOOK, claim=creating(mail_q))) == q
    assert linked_profile(storage, run, later) == q
    assert p != q


def test_a_full_batch_of_linked_events_fits_in_one_statement(
    sqlite_store: SqliteStorage, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The largest batch the settings allow, every event with a claim, on an SQLite built with
    the common limit of 32766 bound values per statement."""
    storage = sqlite_store
    add_sources(storage, run, "hooks")
    largest = 2700
    with pytest.raises(ValueError, match="2700"):
        load_config({"EVENTSTITCH_BATCH_SIZE": str(largest + 1)})
    writer = storage.db.writer  # the batch size is the writer's own
    monkeypatch.setattr(writer, "_batch_size", largest)

    def common_limit(conn: sqlite3.Connection) -> None:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)

    run(storage.db.write(common_limit))
    events = [event(n=n) for n in range(largest)]

    async def scenario() -> list[Any]:
        release, write = held_writer(storage)
        await asyncio.sleep(0)
        answers = asyncio.ensure_future(
            append_together(
                storage, [(e, creating(("email", f"{n}@a.com"))) for n, e in enumerate(events)]
            )
        )
        await asyncio.sleep(0.2)  # every append is queued behind the hold
        release.set()
        await write
        return await answers

    answers = run(scenario())
    assert not [a for a in answers if isinstance(a, BaseException)]
    assert len(set(answers)) == largest  # a profile each
    assert run(storage.events.get(events[-1].id)) is not None


def test_a_copy_of_a_refused_delivery_is_refused_too(
    storage: Storage, run: Run, backend: str
) -> None:
    """Two copies of one delivery in one batch, to a source that refuses them: neither is
    answered as a duplicate of an event that was never stored."""
    run(storage.sources.create(source("off", enabled=False)))
    first, second = event("off", n=1), event("off", n=2)

    async def scenario() -> list[Any]:
        appends = [
            storage.events.append(e, accepted_kinds=WEBHOOK, delivery_key="same")
            for e in (first, second)
        ]
        if backend != "sqlite":  # queued in one loop turn: one batch of the writer task
            return await asyncio.gather(*appends, return_exceptions=True)
        release, write = held_writer(storage)
        await asyncio.sleep(0)
        answers = asyncio.gather(*appends, return_exceptions=True)
        await asyncio.sleep(0.05)
        release.set()
        await write
        return await answers

    answers = run(scenario())
    assert [type(a) for a in answers] == [SourceRefused, SourceRefused]
    assert run(storage.events.get(first.id)) is None
