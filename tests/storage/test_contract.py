"""The storage contract: what every backend must do, written against the protocol only."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from eventstitch.ids import id_floor, new_event_id
from eventstitch.storage.interfaces import (
    CountQuery,
    DuplicateSource,
    EventFilter,
    EventRecord,
    GroupBy,
    SourceRecord,
    SourceRefused,
)
from tests.storage.conftest import Runner

WEBHOOK = frozenset({"webhook"})


def source(source_id: str, **changes: object) -> SourceRecord:
    record = SourceRecord(source_id, "A source", "webhook", True, "", ("t",), 1000, 1000)
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def event(source_id: str = "hooks", event_type: str = "order", **properties: object) -> EventRecord:
    event_id, received_ms = new_event_id()
    return EventRecord(
        event_id,
        event_type,
        source_id,
        received_ms,
        True,
        None,
        None,
        dict(properties),
        {"client": "127.0.0.1"},
    )


def test_sources_round_trip_and_change_only_what_is_asked(store: Runner) -> None:
    sources = store.storage.sources
    created = store.run(sources.create(source("hooks", tags=("a", "b"))))
    assert store.run(sources.get("hooks")) == created
    with pytest.raises(DuplicateSource):
        store.run(sources.create(source("hooks")))
    changed = store.run(sources.update("hooks", {"enabled": False}, 2000))
    assert changed is not None
    assert changed.enabled is False
    assert changed.name == "A source"
    assert changed.tags == ("a", "b")
    assert changed.updated_ms == 2000
    assert store.run(sources.update("missing", {"enabled": False}, 2000)) is None
    assert "hooks" in [s.id for s in store.run(sources.list_all())]
    assert store.run(sources.delete("hooks")) is True
    assert store.run(sources.delete("hooks")) is False
    assert store.run(sources.get("hooks")) is None


def test_an_event_round_trips_every_field(store: Runner) -> None:
    store.run(store.storage.sources.create(source("hooks")))
    original = event(name="Zoë 🐢", nested={"list": [1, 2.5, None, True]}, n=2**62)
    assert store.run(store.storage.events.append(original, accepted_kinds=WEBHOOK)) is None
    assert store.run(store.storage.events.get(original.id)) == original
    assert store.run(store.storage.events.get("missing")) is None


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (None, "unknown_source"),
        ({"enabled": False}, "disabled_source"),
        ({"kind": "tracker"}, "wrong_source_kind"),
    ],
)
def test_append_refuses_a_source_that_cannot_take_events_and_stores_nothing(
    store: Runner, setup: dict[str, object] | None, reason: str
) -> None:
    if setup is not None:
        store.run(store.storage.sources.create(source("hooks", **setup)))
    refused = event()
    with pytest.raises(SourceRefused) as caught:
        store.run(store.storage.events.append(refused, accepted_kinds=WEBHOOK))
    assert caught.value.reason == reason
    assert store.run(store.storage.events.get(refused.id)) is None


def test_a_source_disabled_between_two_appends_refuses_the_second(store: Runner) -> None:
    store.run(store.storage.sources.create(source("hooks")))
    store.run(store.storage.events.append(event(), accepted_kinds=WEBHOOK))
    store.run(store.storage.sources.update("hooks", {"enabled": False}, 2000))
    with pytest.raises(SourceRefused):
        store.run(store.storage.events.append(event(), accepted_kinds=WEBHOOK))


def test_concurrent_appends_are_all_stored_once(store: Runner) -> None:
    store.run(store.storage.sources.create(source("hooks")))
    events = [event(n=n) for n in range(300)]

    async def append_all() -> None:
        await asyncio.gather(
            *(store.storage.events.append(e, accepted_kinds=WEBHOOK) for e in events)
        )

    store.run(append_all())
    page = store.run(store.storage.events.list_page(EventFilter(), limit=1000, before_id=None))
    assert sorted(e.id for e in page) == sorted(e.id for e in events)


def test_pages_are_newest_first_and_cover_everything_once(store: Runner) -> None:
    store.run(store.storage.sources.create(source("hooks")))
    events = [event(n=n) for n in range(25)]
    for e in events:
        store.run(store.storage.events.append(e, accepted_kinds=WEBHOOK))
    seen: list[str] = []
    before = None
    while True:
        page = store.run(store.storage.events.list_page(EventFilter(), limit=7, before_id=before))
        seen += [e.id for e in page]
        if len(page) < 7:
            break
        before = page[-1].id
    assert seen == sorted((e.id for e in events), reverse=True)


def test_filters_narrow_by_type_source_time_and_property(store: Runner) -> None:
    for source_id in ("hooks", "other"):
        store.run(store.storage.sources.create(source(source_id)))
    a = event(email="a@a.com", seats=5, vip=True, customer={"email": "x@x.com"})
    b = event(event_type="refund", email="b@b.com", seats="5", vip=False, gone=None)
    c = event(source_id="other", seats=5.0)
    for e in (a, b, c):
        store.run(store.storage.events.append(e, accepted_kinds=WEBHOOK))

    def ids(**fields: object) -> set[str]:
        page = store.run(
            store.storage.events.list_page(EventFilter(**fields), limit=100, before_id=None)  # type: ignore[arg-type]
        )
        return {e.id for e in page}

    assert ids(types=("refund",)) == {b.id}
    assert ids(source_ids=("other",)) == {c.id}
    assert ids(types=("order", "refund"), source_ids=("hooks",)) == {a.id, b.id}
    assert ids(profile_less=True) == {a.id, b.id, c.id}
    assert ids(profile_less=False) == set()
    assert ids(since_ms=b.received_ms) >= {b.id, c.id}
    assert a.id not in ids(since_ms=a.received_ms + 1)
    assert ids(until_ms=a.received_ms) == set()  # until is exclusive
    assert ids(properties=((("customer", "email"), "x@x.com"),)) == {a.id}
    assert ids(properties=((("seats",), "5"),)) == {a.id, b.id, c.id}  # 5, "5" and 5.0
    assert ids(properties=((("vip",), "true"),)) == {a.id}
    assert ids(properties=((("vip",), "false"),)) == {b.id}
    assert ids(properties=((("gone",), "null"),)) == {b.id}
    assert ids(properties=((("email",), "a@a.com"), (("seats",), "5"))) == {a.id}


def test_counts_by_every_dimension_and_rollup_agrees_with_a_scan(store: Runner) -> None:
    store.run(store.storage.sources.create(source("hooks")))
    store.run(store.storage.sources.create(source("other")))
    for n in range(30):
        e = event(
            source_id="hooks" if n % 3 else "other",
            event_type=f"type-{n % 4}",
            user=f"user-{n % 5}",
        )
        store.run(store.storage.events.append(e, accepted_kinds=WEBHOOK))

    def count(query: CountQuery, **fields: object) -> dict[tuple[object, ...], int]:
        result = store.run(store.storage.events.count(EventFilter(**fields), query))  # type: ignore[arg-type]
        return {row.keys: row.count for row in result.rows}

    by_type = count(CountQuery(group_by=(GroupBy("type"),)))
    assert sum(by_type.values()) == 30
    assert by_type[("type-0",)] == 8
    assert count(CountQuery(group_by=(GroupBy("source"),))) == {("hooks",): 20, ("other",): 10}
    by_user = count(CountQuery(group_by=(GroupBy("property", ("user",)),)))
    assert by_user == {(f"user-{n}",): 6 for n in range(5)}
    for dimension in ("minute", "hour", "day"):
        assert sum(count(CountQuery(group_by=(GroupBy(dimension),))).values()) == 30  # type: ignore[arg-type]

    rollup = store.run(
        store.storage.events.count(
            EventFilter(), CountQuery(group_by=(GroupBy("hour"), GroupBy("type")))
        )
    )
    scan = store.run(
        store.storage.events.count(
            EventFilter(properties=((("user",), "user-0"),)),
            CountQuery(group_by=(GroupBy("hour"), GroupBy("type"))),
        )
    )
    assert rollup.from_rollup is True
    assert scan.from_rollup is False
    assert sum(r.count for r in rollup.rows) == 30
    assert sum(r.count for r in scan.rows) == 6

    distinct = store.run(
        store.storage.events.count(
            EventFilter(),
            CountQuery(group_by=(GroupBy("source"),), distinct=("user",)),
        )
    )
    assert {r.keys: r.distinct for r in distinct.rows} == {("hooks",): 5, ("other",): 5}


def test_time_bounds_map_onto_event_ids() -> None:
    e = event()
    assert id_floor(e.received_ms) <= e.id < id_floor(e.received_ms + 1)


def test_migrate_twice_applies_nothing_the_second_time(store: Runner) -> None:
    assert store.run(store.storage.migrate()) == []


def test_import_keeps_ids_and_skips_what_exists(store: Runner) -> None:
    store.run(store.storage.sources.create(source("hooks")))
    events = [event(n=n) for n in range(5)]
    assert store.run(store.storage.events.import_batch(events)) == 5
    assert store.run(store.storage.events.import_batch(events)) == 0
    assert store.run(store.storage.events.get(events[0].id)) == events[0]
    total = store.run(store.storage.events.count(EventFilter(), CountQuery(group_by=())))
    assert total.total == 5
