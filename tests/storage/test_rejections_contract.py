"""The rejections store's contract, on every backend (tests/storage/conftest.py::CONFIGS):
what goes in comes back, listings filter and page newest first, the bounds drop the oldest
and every drop is counted, and a replay can be claimed once."""

from __future__ import annotations

import dataclasses
from typing import Any

from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import RejectionBounds, RejectionFilter, RejectionRecord
from eventstitch.storage.shared.rejection_rows import rejection_row
from tests.storage.conftest import Run
from tests.storage.test_contract import DAY, T0, id_at

ROOMY = RejectionBounds(max_rows=1000, min_received_ms=0)


def rejection(at: int, *, reason: str = "malformed_json", **changes: Any) -> RejectionRecord:
    record = RejectionRecord(
        id=id_at(at),
        received_ms=at,
        route="collect",
        reason=reason,
        status=400,
        message="malformed JSON at line 1, column 2",
        errors=[{"field": "body", "line": 1}],
        source_id="hooks",
        method="POST",
        path="/collect/order/hooks",
        query="a=1",
        headers={"content-type": "application/json", "user-agent": "test"},
        client="127.0.0.1",
        body=b'{"a": ',
        body_size=6,
        body_truncated=False,
    )
    return dataclasses.replace(record, **changes)


def listed(storage: Storage, run: Run, **fields: Any) -> list[RejectionRecord]:
    found: list[RejectionRecord] = []
    before = None
    while True:
        page = run(
            storage.rejections.list_page(RejectionFilter(**fields), limit=3, before_id=before)
        )
        found += page
        if len(page) < 3:
            return found
        before = page[-1].id


def test_a_rejection_comes_back_as_it_went_in(storage: Storage, run: Run) -> None:
    odd = rejection(
        T0,
        body=bytes(range(256)),
        body_size=300,
        body_truncated=True,
        source_id=None,
        headers={"x-emoji": "\u00e9t\u00e9"},
        errors=[],
    )
    run(storage.rejections.add([odd], bounds=ROOMY, lost={}))
    assert run(storage.rejections.get(odd.id)) == odd
    assert run(storage.rejections.get(id_at(T0 + 1))) is None
    [summary] = listed(storage, run)
    assert summary == dataclasses.replace(odd, body=None)  # listings leave bodies out


def test_adding_the_same_rejection_twice_keeps_one(storage: Storage, run: Run) -> None:
    one = rejection(T0)
    run(storage.rejections.add([one], bounds=ROOMY, lost={}))
    run(storage.rejections.add([one], bounds=ROOMY, lost={}))
    assert [r.id for r in listed(storage, run)] == [one.id]


def test_listings_filter_and_page_newest_first(storage: Storage, run: Run) -> None:
    records = [
        rejection(T0 + n * 1000, reason=("unknown_source" if n % 2 else "malformed_json"),
                  source_id=("a" if n < 4 else "b"))
        for n in range(8)
    ]  # fmt: skip
    run(storage.rejections.add(records, bounds=ROOMY, lost={}))
    newest = [r.id for r in reversed(records)]
    assert [r.id for r in listed(storage, run)] == newest
    assert [r.id for r in listed(storage, run, reasons=("unknown_source",))] == newest[0::2]
    assert [r.id for r in listed(storage, run, source_ids=("b",))] == newest[:4]
    assert [r.id for r in listed(storage, run, since_ms=T0 + 2000, until_ms=T0 + 5000)] == [
        records[4].id,
        records[3].id,
        records[2].id,
    ]
    both = listed(storage, run, reasons=("malformed_json",), source_ids=("a", "b"))
    assert [r.id for r in both] == newest[1::2]


def test_the_count_bound_drops_the_oldest_and_counts_them(storage: Storage, run: Run) -> None:
    records = [rejection(T0 + n) for n in range(10)]
    bounds = RejectionBounds(max_rows=4, min_received_ms=0)
    deleted = run(storage.rejections.add(records[:6], bounds=bounds, lost={}))
    assert deleted == {"max_age": 0, "max_rows": 2, "max_bytes": 0}
    deleted = run(storage.rejections.add(records[6:], bounds=bounds, lost={"buffer_full": 3}))
    assert deleted == {"max_age": 0, "max_rows": 4, "max_bytes": 0}
    assert [r.id for r in listed(storage, run)] == [r.id for r in reversed(records[6:])]
    assert run(storage.rejections.dropped()) == {"buffer_full": 3, "max_rows": 6}


def test_the_byte_bound_keeps_the_newest_at_the_limit_and_drops_one_more(
    storage: Storage, run: Run
) -> None:
    big = [rejection(T0 + n, body=b"x" * 10_000, body_size=10_000) for n in range(5)]
    size = rejection_row(big[0])[-1]
    assert 10_000 < size < 11_000
    assert all(rejection_row(r)[-1] == size for r in big)
    at_limit = RejectionBounds(max_rows=1000, min_received_ms=0, max_bytes=3 * size)

    deleted = run(storage.rejections.add(big[:4], bounds=at_limit, lost={}))

    assert deleted == {"max_age": 0, "max_rows": 0, "max_bytes": 1}
    assert [r.id for r in listed(storage, run)] == [r.id for r in reversed(big[1:4])]
    one_under = dataclasses.replace(at_limit, max_bytes=3 * size - 1)
    deleted = run(storage.rejections.add(big[4:], bounds=one_under, lost={}))
    assert deleted == {"max_age": 0, "max_rows": 0, "max_bytes": 2}
    assert [r.id for r in listed(storage, run)] == [big[4].id, big[3].id]
    assert run(storage.rejections.dropped()) == {"max_bytes": 3}


def test_the_age_bound_drops_what_is_older_and_counts_it(storage: Storage, run: Run) -> None:
    old = [rejection(T0 - 2 * DAY + n) for n in range(3)]
    recent = [rejection(T0 + n) for n in range(2)]
    run(storage.rejections.add(old + recent, bounds=ROOMY, lost={}))
    bounds = RejectionBounds(max_rows=1000, min_received_ms=T0 - DAY)
    deleted = run(storage.rejections.add([], bounds=bounds, lost={"error": 1}))
    assert deleted == {"max_age": 3, "max_rows": 0, "max_bytes": 0}
    assert [r.id for r in listed(storage, run)] == [r.id for r in reversed(recent)]
    assert run(storage.rejections.dropped()) == {"error": 1, "max_age": 3}


def test_a_replay_is_claimed_once_and_can_be_given_back(storage: Storage, run: Run) -> None:
    one = rejection(T0)
    run(storage.rejections.add([one], bounds=ROOMY, lost={}))
    assert run(storage.rejections.claim_replay(one.id, at_ms=T0 + 5)) is True
    assert run(storage.rejections.claim_replay(one.id, at_ms=T0 + 6)) is False
    run(storage.rejections.finish_replay(one.id, event_ids=None))
    assert run(storage.rejections.get(one.id)) == one
    assert run(storage.rejections.claim_replay(one.id, at_ms=T0 + 7)) is True
    run(storage.rejections.finish_replay(one.id, event_ids=("e-1", "e-2")))
    stored = run(storage.rejections.get(one.id))
    assert stored == dataclasses.replace(one, replayed_ms=T0 + 7, replayed_event_ids=("e-1", "e-2"))
    assert run(storage.rejections.claim_replay("nope", at_ms=T0)) is False


def test_text_a_database_could_refuse_is_stored_anyway(storage: Storage, run: Run) -> None:
    nul = rejection(
        T0,
        path="/collect/a\x00b/hooks",
        message="event type 'a\x00b' is not allowed",
        headers={"x-odd": "a\x00b"},
        errors=[{"field": "event_type", "value": "a\x00b"}],
        source_id="ho\x00oks",
    )
    run(storage.rejections.add([nul], bounds=ROOMY, lost={}))
    stored = run(storage.rejections.get(nul.id))
    assert stored is not None
    assert stored.errors == nul.errors  # JSON keeps U+0000 escaped
    assert stored.path.startswith("/collect/a")  # U+0000 may become U+FFFD in plain text
    assert listed(storage, run, source_ids=("ho\x00oks",)) == [
        dataclasses.replace(stored, body=None)
    ]
