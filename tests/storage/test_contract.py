"""The storage contract: what every backend must do, written against the `Storage` protocol only.

No SQL and nothing backend-specific here: each test runs once per backend in
`tests/storage/conftest.py::CONFIGS`. Events are built with ids minted at chosen times, so that
time filters and time buckets can be checked exactly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventstitch.ids import new_event_id
from eventstitch.storage import open_storage
from eventstitch.storage.errors import DuplicateDelivery, DuplicateSource, QueueFull, SourceRefused
from eventstitch.storage.interfaces import Storage
from eventstitch.storage.records import (
    CountQuery,
    CountResult,
    EventFilter,
    EventRecord,
    GroupBy,
    IdentificationRule,
    RateLimit,
    SignatureRule,
    SourceRecord,
)
from tests.storage.conftest import CONFIGS, Run, started_storage

WEBHOOK = frozenset({"webhook"})
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, hour- and day-aligned


def source(source_id: str = "hooks", **changes: Any) -> SourceRecord:
    record = SourceRecord(source_id, "A source", "webhook", True, "", ("t",), 1000, 1000)
    return dataclasses.replace(record, **changes)


def id_at(ms: int) -> str:
    """A UUIDv7 string minted at `ms` (random below the millisecond)."""
    stamp = f"{ms:012x}"
    rand = secrets.token_hex(10)
    variant = "89ab"[int(rand[3], 16) % 4]
    return f"{stamp[:8]}-{stamp[8:]}-7{rand[:3]}-{variant}{rand[4:7]}-{rand[7:19]}"


def event(
    source_id: str = "hooks",
    event_type: str = "order",
    *,
    at: int | None = None,
    context: dict[str, Any] | None = None,
    **properties: Any,
) -> EventRecord:
    """A profile-less event, received now or at `at` (Unix ms)."""
    if at is None:
        event_id, received_ms = new_event_id()
    else:
        event_id, received_ms = id_at(at), at
    return EventRecord(
        event_id,
        event_type,
        source_id,
        received_ms,
        True,
        None,
        None,
        dict(properties),
        context if context is not None else {"client": "127.0.0.1"},
    )


def add_sources(storage: Storage, run: Run, *ids: str) -> None:
    for source_id in ids:
        run(storage.sources.create(source(source_id)))


def append(storage: Storage, run: Run, *events: EventRecord) -> None:
    for e in events:
        run(storage.events.append(e, accepted_kinds=WEBHOOK))


def listed(storage: Storage, run: Run, **fields: Any) -> list[EventRecord]:
    """Every event matching the filter, read page by page, newest first."""
    found: list[EventRecord] = []
    before: str | None = None
    while True:
        page = run(storage.events.list_page(EventFilter(**fields), limit=500, before_id=before))
        found += page
        if len(page) < 500:
            return found
        before = page[-1].id


def ids(storage: Storage, run: Run, **fields: Any) -> set[str]:
    return {e.id for e in listed(storage, run, **fields)}


def counted(
    storage: Storage, run: Run, *by: GroupBy, distinct: tuple[str, ...] | None = None, **fields: Any
) -> CountResult:
    return run(storage.events.count(EventFilter(**fields), CountQuery(by, distinct=distinct)))


def as_dict(result: CountResult) -> dict[tuple[Any, ...], int]:
    return {row.keys: row.count for row in result.rows}


# -- sources ---------------------------------------------------------------------------------


def test_a_fresh_store_holds_only_the_system_source(storage: Storage, run: Run) -> None:
    sources = run(storage.sources.list_all())
    assert [(s.id, s.kind, s.enabled) for s in sources] == [("system", "system", True)]
    assert listed(storage, run) == []


def test_a_source_round_trips_every_field(storage: Storage, run: Run) -> None:
    full = source(
        "shop.eu_1-a",
        name="Boutique Zoë 🐢",
        kind="tracker",
        enabled=False,
        description="orders\nand refunds",
        tags=("eu", "ünï", "b"),
        created_ms=1_700_000_000_123,
        updated_ms=1_700_000_000_456,
        identification=(
            IdentificationRule(("customer", "email"), "email", True, ("order", "refund")),
            IdentificationRule(("phone",), "phone"),
        ),
        traits={"name": ("customer", "name"), "plan": ("plan",)},
        delivery_id_path=("meta", "delivery"),
        signature=SignatureRule(
            "hmac",
            ("sëcret-ünï-0123456789", "second-secret-abcdef"),
            "x-sig",
            "sha512",
            "base64",
            "sha512=",
            60,
        ),
        rate_limit=RateLimit(per_second=2.5, burst=7),
    )
    assert run(storage.sources.create(full)) == full
    assert run(storage.sources.get("shop.eu_1-a")) == full
    assert run(storage.sources.get("missing")) is None


def test_list_returns_every_source(storage: Storage, run: Run) -> None:
    created = [run(storage.sources.create(source(f"s{n}", name=f"n{n}"))) for n in range(3)]
    listed_sources = {s.id: s for s in run(storage.sources.list_all())}
    assert set(listed_sources) == {"system", "s0", "s1", "s2"}
    for record in created:
        assert listed_sources[record.id] == record


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Renamed"},
        {"enabled": False},
        {"kind": "tracker"},
        {"description": "new text"},
        {"tags": ("x", "y")},
        {"identification": (IdentificationRule(("email",), "email"),)},
        {"traits": {"plan": ("plan",)}},
        {"delivery_id_path": ("id",)},
        {"name": "Both", "tags": ()},
        {"signature": SignatureRule("github", ("a-secret-of-16-chars",))},
        {"signature": SignatureRule("stripe", ("whsec_one", "whsec_two"), tolerance_seconds=30)},
        {"rate_limit": RateLimit(per_second=0.5, burst=3)},
        {"rate_limit": RateLimit(per_second=0)},
    ],
)
def test_update_changes_only_the_fields_given_and_sets_updated_time(
    storage: Storage, run: Run, changes: dict[str, Any]
) -> None:
    original = run(storage.sources.create(source(tags=("a", "b"), description="d")))
    changed = run(storage.sources.update("hooks", changes, 5000))
    expected = dataclasses.replace(original, **changes, updated_ms=5000)
    assert changed == expected
    assert run(storage.sources.get("hooks")) == expected


def test_signature_and_rate_limit_are_cleared_by_none_and_kept_by_other_changes(
    storage: Storage, run: Run
) -> None:
    signed = source(
        signature=SignatureRule("token", ("token-secret-0123456789",), "x-webhook-token"),
        rate_limit=RateLimit(per_second=10, burst=20),
    )
    run(storage.sources.create(signed))
    renamed = run(storage.sources.update("hooks", {"name": "Renamed"}, 2000))
    assert renamed == dataclasses.replace(signed, name="Renamed", updated_ms=2000)
    cleared = run(storage.sources.update("hooks", {"signature": None, "rate_limit": None}, 3000))
    assert cleared is not None
    assert (cleared.signature, cleared.rate_limit) == (None, None)
    assert run(storage.sources.get("hooks")) == cleared


def test_update_of_a_missing_source_answers_none_and_creates_nothing(
    storage: Storage, run: Run
) -> None:
    assert run(storage.sources.update("missing", {"enabled": False}, 2000)) is None
    assert run(storage.sources.get("missing")) is None


def test_creating_an_existing_id_raises_duplicate_source_and_keeps_the_first(
    storage: Storage, run: Run
) -> None:
    first = run(storage.sources.create(source(name="First")))
    with pytest.raises(DuplicateSource):
        run(storage.sources.create(source(name="Second", kind="tracker")))
    assert run(storage.sources.get("hooks")) == first


def test_delete_removes_a_source_once(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks", "other")
    assert run(storage.sources.delete("hooks")) is True
    assert run(storage.sources.delete("hooks")) is False
    assert run(storage.sources.get("hooks")) is None
    assert {s.id for s in run(storage.sources.list_all())} == {"system", "other"}


def test_a_deleted_source_keeps_its_events(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    kept = event()
    append(storage, run, kept)
    run(storage.sources.delete("hooks"))
    assert run(storage.events.get(kept.id)) == kept


# -- appending and reading events ------------------------------------------------------------


def test_an_event_round_trips_every_field(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    properties = {
        "name": "Zoë 🐢 ünïcødé",
        "日本語": "値",
        "a.b": "a key with a dot",
        "with space": "",
        "customer": {"email": "a@a.com", "address": {"lines": ["1 Rue", None], "zip": "01"}},
        "list": [1, 2.5, None, True, False, "x", {"k": []}],
        "big": 2**62,
        "negative": -17,
        "real": 0.1,
        "empty": {},
        "null": None,
        "yes": True,
    }
    context = {"content_type": "application/json", "headers": {"x-ünï": "✓"}, "query": ""}
    original = event(context=context, **properties)
    assert run(storage.events.append(original, accepted_kinds=WEBHOOK)) is None
    assert run(storage.events.get(original.id)) == original
    old = event(at=T0 + 123, note="received in the past")
    append(storage, run, old)
    assert run(storage.events.get(old.id)) == old


def test_an_unknown_event_id_reads_as_none(storage: Storage, run: Run) -> None:
    assert run(storage.events.get(id_at(T0))) is None
    assert run(storage.events.get("not-an-id")) is None


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (None, "unknown_source"),
        ({"enabled": False}, "disabled_source"),
        ({"kind": "tracker"}, "wrong_source_kind"),
    ],
)
def test_append_refuses_a_source_that_cannot_take_events_and_stores_nothing(
    storage: Storage, run: Run, setup: dict[str, Any] | None, reason: str
) -> None:
    if setup is not None:
        run(storage.sources.create(source(**setup)))
    refused = event()
    with pytest.raises(SourceRefused) as caught:
        run(storage.events.append(refused, accepted_kinds=WEBHOOK))
    assert caught.value.reason == reason
    assert caught.value.source_id == "hooks"
    assert run(storage.events.get(refused.id)) is None
    assert listed(storage, run) == []
    assert counted(storage, run).total == 0
    assert counted(storage, run, GroupBy("type")).rows == []


def test_append_takes_any_of_the_accepted_kinds(storage: Storage, run: Run) -> None:
    run(storage.sources.create(source(kind="tracker")))
    taken = event()
    run(storage.events.append(taken, accepted_kinds=frozenset({"webhook", "tracker"})))
    assert run(storage.events.get(taken.id)) == taken


def test_a_source_disabled_between_two_appends_refuses_the_second(
    storage: Storage, run: Run
) -> None:
    add_sources(storage, run, "hooks")
    first, second, third = event(n=1), event(n=2), event(n=3)
    append(storage, run, first)
    run(storage.sources.update("hooks", {"enabled": False}, 2000))
    with pytest.raises(SourceRefused) as caught:
        append(storage, run, second)
    assert caught.value.reason == "disabled_source"
    run(storage.sources.update("hooks", {"enabled": True}, 3000))
    append(storage, run, third)
    assert ids(storage, run) == {first.id, third.id}


def test_a_source_removed_between_two_appends_refuses_the_second(
    storage: Storage, run: Run
) -> None:
    add_sources(storage, run, "hooks")
    first, second = event(n=1), event(n=2)
    append(storage, run, first)
    run(storage.sources.delete("hooks"))
    with pytest.raises(SourceRefused) as caught:
        append(storage, run, second)
    assert caught.value.reason == "unknown_source"
    assert ids(storage, run) == {first.id}


def test_concurrent_appends_are_all_stored_once(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    events = [event(n=n) for n in range(200)]

    async def append_all() -> list[str | None]:
        return await asyncio.gather(
            *(storage.events.append(e, accepted_kinds=WEBHOOK) for e in events)
        )

    assert run(append_all()) == [None] * 200
    stored = listed(storage, run)
    assert len(stored) == 200
    assert {e.id for e in stored} == {e.id for e in events}
    assert sorted(e.properties["n"] for e in stored) == list(range(200))
    assert counted(storage, run).total == 200


def test_a_refused_event_among_concurrent_appends_leaves_the_others_stored(
    storage: Storage, run: Run
) -> None:
    add_sources(storage, run, "hooks")
    run(storage.sources.create(source("off", enabled=False)))
    events = [event("hooks" if n % 3 else ("off" if n % 2 else "nowhere"), n=n) for n in range(60)]

    async def append_all() -> list[object]:
        return await asyncio.gather(
            *(storage.events.append(e, accepted_kinds=WEBHOOK) for e in events),
            return_exceptions=True,
        )

    outcomes = run(append_all())
    for e, outcome in zip(events, outcomes, strict=True):
        if e.source_id == "hooks":
            assert outcome is None
        else:
            assert isinstance(outcome, SourceRefused)
            expected = "disabled_source" if e.source_id == "off" else "unknown_source"
            assert outcome.reason == expected
    assert ids(storage, run) == {e.id for e in events if e.source_id == "hooks"}


def test_a_full_queue_refuses_appends_whole_and_loses_none(
    backend: str, tmp_path: Path, run: Run
) -> None:
    with started_storage(backend, tmp_path, run, queue_size=1) as storage:
        add_sources(storage, run, "hooks")
        events = [event(n=n) for n in range(300)]

        async def append_all() -> list[object]:
            return await asyncio.gather(
                *(storage.events.append(e, accepted_kinds=WEBHOOK) for e in events),
                return_exceptions=True,
            )

        outcomes = run(append_all())
        assert all(o is None or isinstance(o, QueueFull) for o in outcomes), outcomes
        accepted = {e.id for e, o in zip(events, outcomes, strict=True) if o is None}
        # 300 appends submitted in one turn of the loop cannot all fit a queue of one.
        assert len(accepted) < len(events)
        assert ids(storage, run) == accepted


def test_a_repeated_delivery_key_stores_the_event_once(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks", "other")
    first, retry, elsewhere, unkeyed = event(n=1), event(n=1), event("other", n=1), event(n=1)
    run(storage.events.append(first, accepted_kinds=WEBHOOK, delivery_key="evt_1"))
    with pytest.raises(DuplicateDelivery) as caught:
        run(storage.events.append(retry, accepted_kinds=WEBHOOK, delivery_key="evt_1"))
    assert caught.value.original_event_id == first.id
    run(storage.events.append(elsewhere, accepted_kinds=WEBHOOK, delivery_key="evt_1"))
    run(storage.events.append(unkeyed, accepted_kinds=WEBHOOK))
    assert ids(storage, run) == {first.id, elsewhere.id, unkeyed.id}


def test_concurrent_deliveries_with_one_key_store_one_event(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    events = [event(n=n) for n in range(20)]

    async def append_all() -> list[object]:
        return await asyncio.gather(
            *(
                storage.events.append(e, accepted_kinds=WEBHOOK, delivery_key="same")
                for e in events
            ),
            return_exceptions=True,
        )

    outcomes = run(append_all())
    stored = [e.id for e, o in zip(events, outcomes, strict=True) if o is None]
    assert len(stored) == 1
    for outcome in outcomes:
        assert outcome is None or isinstance(outcome, DuplicateDelivery), outcome
        if isinstance(outcome, DuplicateDelivery):
            assert outcome.original_event_id == stored[0]
    assert ids(storage, run) == set(stored)


def test_a_refused_delivery_does_not_use_up_its_key(storage: Storage, run: Run) -> None:
    run(storage.sources.create(source(enabled=False)))
    refused, retried = event(n=1), event(n=1)
    with pytest.raises(SourceRefused):
        run(storage.events.append(refused, accepted_kinds=WEBHOOK, delivery_key="k"))
    run(storage.sources.update("hooks", {"enabled": True}, 2000))
    run(storage.events.append(retried, accepted_kinds=WEBHOOK, delivery_key="k"))
    assert ids(storage, run) == {retried.id}


def test_pages_are_newest_first_and_cover_everything_once(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    # Several events share a millisecond: their ids still order them.
    events = [event(at=T0 + n // 3, n=n) for n in range(25)] + [event(n=25)]
    append(storage, run, *events)
    pages: list[list[str]] = []
    before: str | None = None
    while True:
        page = run(storage.events.list_page(EventFilter(), limit=7, before_id=before))
        pages.append([e.id for e in page])
        if len(page) < 7:
            break
        before = page[-1].id
    seen = [event_id for page in pages for event_id in page]
    assert [len(page) for page in pages] == [7, 7, 7, 5]
    assert seen == sorted((e.id for e in events), reverse=True)
    assert len(set(seen)) == len(events)


def test_paging_keeps_to_the_filter(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    events = [event(event_type="even" if n % 2 == 0 else "odd", at=T0 + n) for n in range(20)]
    append(storage, run, *events)
    first = run(storage.events.list_page(EventFilter(types=("odd",)), limit=4, before_id=None))
    rest = run(
        storage.events.list_page(EventFilter(types=("odd",)), limit=100, before_id=first[-1].id)
    )
    odd = sorted((e.id for e in events if e.type == "odd"), reverse=True)
    assert [e.id for e in first + rest] == odd


def test_values_pages_follow_list_pages_where_the_store_reads_paths_itself(
    storage: Storage, run: Run
) -> None:
    """`values_page` gives the same events as `list_page`, newest first, page after page,
    each with the JSON text at each path as stored (None where missing); or None on a store
    that does not read paths itself (then the whole events are read)."""
    add_sources(storage, run, "hooks")
    events = [
        event(event_type="odd" if n % 2 else "even", at=T0 + n // 3, status=n, meta={"h": "x"})
        for n in range(15)
    ]
    events.append(event(event_type="odd", at=T0 + 20, status="text"))  # no meta
    append(storage, run, *events)
    only = EventFilter(types=("odd",))
    paths = [("status",), ("meta", "h")]
    found: list[Any] = []
    before: str | None = None
    while True:
        page = run(storage.events.values_page(only, paths, limit=3, before_id=before))
        if page is None:
            assert not found  # a store that cannot, cannot from the first page
            return
        found += page
        if len(page) < 3:
            break
        before = page[-1][0]
    odd = sorted((e for e in events if e.type == "odd"), key=lambda e: e.id, reverse=True)
    assert [row[0] for row in found] == [e.id for e in odd]
    assert [row[1:4] for row in found] == [(e.type, e.source_id, e.received_ms) for e in odd]
    expected = [
        (orjson.dumps(e.properties["status"]).decode(), '"x"' if "meta" in e.properties else None)
        for e in odd
    ]
    assert [row[4] for row in found] == expected


def test_commit_spans_give_later_commits_only_whatever_their_ids(
    storage: Storage, run: Run
) -> None:
    """`commit_span` and `values_committed` read the matching events committed within a span,
    page by page; asked again after the span's end, only events committed since, whatever
    their ids (an older id committed later is among them)."""
    add_sources(storage, run, "hooks")
    late, early = event(at=T0 + 100, status=1), event(at=T0 + 10, status=2)
    append(storage, run, late)
    every = EventFilter(since_ms=T0)
    span = run(storage.events.commit_span(every, after=None))
    assert span is not None
    assert span[0] is None  # from the start

    def read(event_filter: EventFilter, span: Any) -> list[tuple[str, Any]]:
        rows, resume = [], None
        for _ in range(100):  # pages of one event
            page = run(
                storage.events.values_committed(
                    event_filter, [("status",)], span=span, resume=resume, limit=1
                )
            )
            assert page is not None
            rows += [(row[0], row[4]) for row in page[0]]
            resume = page[1]
            if resume is None:
                return rows
        raise AssertionError("the pages never ended")

    assert read(every, span) == [(late.id, ("1",))]
    append(storage, run, early)  # an older id committed after a newer one
    again = run(storage.events.commit_span(every, after=span[1]))
    assert again[0] == span[1]
    assert read(every, again) == [(early.id, ("2",))]
    nothing = run(storage.events.commit_span(every, after=again[1]))
    assert read(every, nothing) == []
    later_only = EventFilter(since_ms=T0 + 60)  # the early one is before it
    whole = run(storage.events.commit_span(later_only, after=None))
    assert read(later_only, whole) == [(late.id, ("1",))]


# -- filters ---------------------------------------------------------------------------------


def test_filters_narrow_by_type_source_and_profile_less(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks", "other", "third")
    a = event("hooks", "order")
    b = event("hooks", "refund")
    c = event("other", "order")
    d = event("third", "signup")
    append(storage, run, a, b, c, d)

    assert ids(storage, run, types=("refund",)) == {b.id}
    assert ids(storage, run, types=("order", "signup")) == {a.id, c.id, d.id}
    assert ids(storage, run, types=("nothing",)) == set()
    assert ids(storage, run, source_ids=("other",)) == {c.id}
    assert ids(storage, run, source_ids=("hooks", "third")) == {a.id, b.id, d.id}
    assert ids(storage, run, types=("order",), source_ids=("hooks",)) == {a.id}
    assert ids(storage, run, profile_less=True) == {a.id, b.id, c.id, d.id}
    assert ids(storage, run, profile_less=False) == set()


def test_since_is_inclusive_and_until_exclusive(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    by_ms = [event(at=T0 + ms, ms=ms) for ms in (0, 1, 2, 2, 3, HOUR)]
    append(storage, run, *by_ms)

    def times(**fields: Any) -> list[int]:
        return sorted(e.properties["ms"] for e in listed(storage, run, **fields))

    assert times(since_ms=T0 + 2) == [2, 2, 3, HOUR]
    assert times(until_ms=T0 + 2) == [0, 1]
    assert times(since_ms=T0 + 1, until_ms=T0 + 3) == [1, 2, 2]
    assert times(since_ms=T0 + 2, until_ms=T0 + 2) == []
    assert times(since_ms=T0 + HOUR) == [HOUR]
    assert times(until_ms=T0) == []
    assert times(since_ms=T0 + HOUR + 1) == []


PROPERTY_EVENTS: dict[str, Any] = {
    "str 5": "5",
    "str 5.0": "5.0",
    "int 5": 5,
    "real 5.0": 5.0,
    "real 2.5": 2.5,
    "int -3": -3,
    "int 10": 10,
    "int big": 2**62,
    "true": True,
    "false": False,
    "null": None,
    "str true": "true",
    "str null": "null",
    "str John": "John",
    "str empty": "",
    "list": [5],
    "object": {"v": 5},
}


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ("5", {"str 5", "int 5", "real 5.0"}),
        ("5.0", {"str 5.0", "int 5", "real 5.0"}),
        ("2.5", {"real 2.5"}),
        ("-3", {"int -3"}),
        ("1e1", {"int 10"}),
        ("true", {"true", "str true"}),
        ("false", {"false"}),
        ("null", {"null", "str null"}),
        ("John", {"str John"}),
        ("john", set()),
        ("", {"str empty"}),
        ("[5]", set()),
        ('{"v": 5}', set()),
        ("1_0", set()),
        (" 5", set()),
        ("nan", set()),
        ("4611686018427387904", {"int big"}),
        pytest.param("9" * 30, set(), id="beyond-64-bits"),
        pytest.param("1" * 5000, set(), id="5000-digits"),
    ],
)
def test_property_equality_follows_the_documented_rules(
    storage: Storage, run: Run, asked: str, expected: set[str]
) -> None:
    """Strings match exactly, a value written as a number matches numbers numerically,
    `true`/`false`/`null` match those JSON literals; arrays, objects and a missing property
    never match."""
    add_sources(storage, run, "hooks")
    for label, value in PROPERTY_EVENTS.items():
        append(storage, run, event(label=label, v=value))
    append(storage, run, event(label="missing"))
    found = {e.properties["label"] for e in listed(storage, run, properties=((("v",), asked),))}
    assert found == expected


def test_property_paths_reach_nested_keys_and_keys_with_dots(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    nested = event(customer={"email": "a@a.com", "address": {"zip": 1000}})
    dotted = event(**{"customer.email": "a@a.com"})
    other = event(customer={"email": "b@b.com"}, tag="x")
    unicode = event(**{"clé": {"ünï": "✓"}})
    append(storage, run, nested, dotted, other, unicode)

    def having(*pairs: tuple[tuple[str, ...], str]) -> set[str]:
        return ids(storage, run, properties=pairs)

    assert having((("customer", "email"), "a@a.com")) == {nested.id}
    assert having((("customer.email",), "a@a.com")) == {dotted.id}
    assert having((("customer", "address", "zip"), "1000")) == {nested.id}
    assert having((("customer", "address", "zip", "deeper"), "1000")) == set()
    assert having((("clé", "ünï"), "✓")) == {unicode.id}
    assert having((("customer", "email"), "b@b.com"), (("tag",), "x")) == {other.id}
    assert having((("customer", "email"), "a@a.com"), (("tag",), "x")) == set()


def test_property_filters_combine_with_the_other_filters(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks", "other")
    a = event("hooks", "order", at=T0, user="u1")
    b = event("hooks", "refund", at=T0 + 1, user="u1")
    c = event("other", "order", at=T0 + 2, user="u1")
    d = event("hooks", "order", at=T0 + 3, user="u2")
    append(storage, run, a, b, c, d)
    user = ((("user",), "u1"),)
    assert ids(storage, run, properties=user) == {a.id, b.id, c.id}
    assert ids(storage, run, properties=user, types=("order",)) == {a.id, c.id}
    assert ids(storage, run, properties=user, source_ids=("hooks",)) == {a.id, b.id}
    assert ids(storage, run, properties=user, since_ms=T0 + 1, until_ms=T0 + 2) == {b.id}


# -- counts ----------------------------------------------------------------------------------


@pytest.fixture
def spread(storage: Storage, run: Run) -> list[EventRecord]:
    """Events over two days, several hours and minutes, two sources and three types."""
    add_sources(storage, run, "hooks", "other")
    times = [
        T0,
        T0 + 30_000,
        T0 + MINUTE,
        T0 + HOUR - 1,
        T0 + HOUR,
        T0 + HOUR + 5 * MINUTE,
        T0 + 3 * HOUR,
        T0 + DAY,
        T0 + DAY + 2 * HOUR + 1,
    ]
    events = [
        event(
            "hooks" if n % 3 else "other",
            ("order", "refund", "signup")[n % 3 if n < 6 else 0],
            at=ms,
            user=f"u{n % 4}",
            plan="pro" if n % 2 else "free",
            every="yes",
        )
        for n, ms in enumerate(times)
    ]
    append(storage, run, *events)
    return events


def expected_counts(events: list[EventRecord], *keys: Any) -> dict[tuple[Any, ...], int]:
    """Counts computed here, from the events themselves."""

    def key_of(e: EventRecord, key: Any) -> Any:
        if key in ("minute", "hour", "day"):
            size = {"minute": MINUTE, "hour": HOUR, "day": DAY}[key]
            return e.received_ms - e.received_ms % size
        if key == "type":
            return e.type
        if key == "source":
            return e.source_id
        return e.properties.get(key)

    return dict(Counter(tuple(key_of(e, k) for k in keys) for e in events))


@pytest.mark.parametrize(
    "dimension", ["type", "source", "minute", "hour", "day", ("property", "user")]
)
def test_counts_by_each_dimension_are_exact(
    storage: Storage, run: Run, spread: list[EventRecord], dimension: Any
) -> None:
    if isinstance(dimension, tuple):
        group = GroupBy("property", (dimension[1],))
        key = dimension[1]
    else:
        group, key = GroupBy(dimension), dimension
    result = counted(storage, run, group)
    assert as_dict(result) == expected_counts(spread, key)
    assert result.total == len(spread)
    assert result.truncated is False
    if dimension in ("minute", "hour", "day"):
        assert [row.keys for row in result.rows] == sorted(row.keys for row in result.rows)


def test_counts_by_time_and_another_dimension_are_exact(
    storage: Storage, run: Run, spread: list[EventRecord]
) -> None:
    for time_key in ("minute", "hour", "day"):
        for other in ("type", "source"):
            result = counted(storage, run, GroupBy(time_key), GroupBy(other))
            assert as_dict(result) == expected_counts(spread, time_key, other)
            times = [row.keys[0] for row in result.rows]
            assert times == sorted(times)
    by_type_and_plan = counted(storage, run, GroupBy("type"), GroupBy("property", ("plan",)))
    assert as_dict(by_type_and_plan) == expected_counts(spread, "type", "plan")


def test_counts_respect_every_filter(storage: Storage, run: Run, spread: list[EventRecord]) -> None:
    by_type = GroupBy("type")
    hooks = [e for e in spread if e.source_id == "hooks"]
    assert as_dict(counted(storage, run, by_type, source_ids=("hooks",))) == expected_counts(
        hooks, "type"
    )
    orders = [e for e in spread if e.type == "order"]
    assert as_dict(counted(storage, run, GroupBy("hour"), types=("order",))) == expected_counts(
        orders, "hour"
    )
    window = [e for e in spread if T0 + MINUTE <= e.received_ms < T0 + DAY]
    result = counted(storage, run, by_type, since_ms=T0 + MINUTE, until_ms=T0 + DAY)
    assert as_dict(result) == expected_counts(window, "type")
    assert result.total == len(window)
    u1 = [e for e in spread if e.properties["user"] == "u1"]
    result = counted(storage, run, by_type, properties=((("user",), "u1"),))
    assert as_dict(result) == expected_counts(u1, "type")
    assert result.total == len(u1)
    assert counted(storage, run, by_type, profile_less=False).rows == []


def test_distinct_counts_values_of_a_property_per_group(
    storage: Storage, run: Run, spread: list[EventRecord]
) -> None:
    result = counted(storage, run, GroupBy("source"), distinct=("user",))
    expected = {
        (source_id,): len({e.properties["user"] for e in spread if e.source_id == source_id})
        for source_id in ("hooks", "other")
    }
    assert {row.keys: row.distinct for row in result.rows} == expected
    assert as_dict(result) == expected_counts(spread, "source")
    by_day = counted(storage, run, GroupBy("day"), distinct=("plan",))
    assert {row.keys: row.distinct for row in by_day.rows} == {(T0,): 2, (T0 + DAY,): 2}


def test_a_count_stops_at_max_rows_and_says_so(
    storage: Storage, run: Run, spread: list[EventRecord]
) -> None:
    result = run(storage.events.count(EventFilter(), CountQuery((GroupBy("minute"),), max_rows=3)))
    assert len(result.rows) == 3
    assert result.truncated is True
    assert result.total == len(spread)


def test_counts_from_the_rollup_equal_counts_from_a_scan(
    storage: Storage, run: Run, spread: list[EventRecord]
) -> None:
    now_events = [event("hooks", "order", every="yes") for _ in range(3)]
    append(storage, run, *now_events)
    everything = spread + now_events
    last = max(e.received_ms for e in everything)
    aligned = {"since_ms": T0 - HOUR, "until_ms": last - last % HOUR + HOUR}
    scan_only = {"properties": ((("every",), "yes"),)}  # true of every event: forces a scan
    for by in (
        (GroupBy("hour"), GroupBy("type")),
        (GroupBy("day"), GroupBy("source")),
        (GroupBy("type"),),
    ):
        for bounds in ({}, aligned, {"since_ms": T0 + HOUR, "until_ms": T0 + DAY}):
            rollup = counted(storage, run, *by, **bounds)
            scan = counted(storage, run, *by, **bounds, **scan_only)
            assert rollup.from_rollup is True
            assert scan.from_rollup is False
            assert as_dict(rollup) == as_dict(scan)
            assert rollup.total == scan.total
            within = [
                e
                for e in everything
                if bounds.get("since_ms", 0) <= e.received_ms < bounds.get("until_ms", 2**62)
            ]
            keys = [g.dimension for g in by]
            assert as_dict(rollup) == expected_counts(within, *keys)


def test_counts_with_bounds_off_the_hour_are_still_exact(
    storage: Storage, run: Run, spread: list[EventRecord]
) -> None:
    since, until = T0 + 30_000, T0 + HOUR + 1
    result = counted(storage, run, GroupBy("hour"), since_ms=since, until_ms=until)
    within = [e for e in spread if since <= e.received_ms < until]
    assert as_dict(result) == expected_counts(within, "hour")
    assert result.total == len(within)


def test_import_keeps_ids_and_times_and_skips_what_exists(storage: Storage, run: Run) -> None:
    add_sources(storage, run, "hooks")
    events = [event(at=T0 + n * HOUR, n=n) for n in range(5)]
    assert run(storage.events.import_batch(events)) == 5
    assert run(storage.events.import_batch(events)) == 0
    assert run(storage.events.get(events[0].id)) == events[0]
    result = counted(storage, run, GroupBy("hour"))
    assert result.from_rollup is True
    assert as_dict(result) == expected_counts(events, "hour")


# -- lifecycle -------------------------------------------------------------------------------


def test_migrate_applies_every_version_once(backend: str, tmp_path: Path, run: Run) -> None:
    with CONFIGS[backend](tmp_path) as config:
        fresh = open_storage(config)
        applied = run(fresh.migrate())
        assert applied
        assert applied == sorted(applied)
        assert run(fresh.migrate()) == []
        run(fresh.start())  # start migrates too: nothing left to do, and it works
        try:
            assert run(fresh.migrate()) == []
            assert [s.id for s in run(fresh.sources.list_all())] == ["system"]
        finally:
            run(fresh.close())


def test_migrate_on_a_started_store_applies_nothing(storage: Storage, run: Run) -> None:
    assert run(storage.migrate()) == []
    assert run(storage.migrate()) == []


def test_a_started_store_answers_ping_with_an_empty_queue(storage: Storage, run: Run) -> None:
    run(storage.ping())
    assert storage.queue_depth() == 0
