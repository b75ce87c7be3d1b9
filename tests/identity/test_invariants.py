"""Identity invariants under any sequence of events, rule changes and backfills, checked with
Hypothesis against real storage through the public API (a fresh store per example).

1. Each (kind, value) belongs to at most one live profile, and a profile holds at most one
   value of a single-valued kind.
2. Every event with a profile points to a live profile, or to a merged one whose `merged_into`
   leads to a live profile; and the profile its ingest answer named leads to the same one.
3. Without single-valued kinds and rule changes, the final grouping of identifiers into
   profiles does not depend on the order the events arrive in.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.identity.normalise import normalise
from tests.conftest import API_TOKEN, create_source, make_config, stored_events
from tests.identity.support import backfill_in_app, collect, find, profile

EMAILS = ("ann@x.com", "bob@x.com", "cat@y.org", "dan@z.net")
PHONES = ("+48601234567", "+14155552671", "+442071838750")
PHONE_SPELLINGS = {
    "+48601234567": ("+48601234567", "+48 601 234 567"),
    "+14155552671": ("+14155552671", "+1 (415) 555-2671"),
    "+442071838750": ("+442071838750", "+44 20 7183 8750"),
}
USER_IDS = ("u1", "u2", "u3")
JUNK = ("undefined", "null", "", "0", "[object Object]", " Anonymous ", None)

RULES = {
    "email": {"path": "email", "kind": "email", "create_profile": True},
    "phone": {"path": "phone", "kind": "phone"},
    "user_id": {"path": "user_id", "kind": "user_id"},
}
ALL_IDENTIFIERS = (
    [("email", v) for v in EMAILS]
    + [("phone", v) for v in PHONES]
    + [("user_id", v) for v in USER_IDS]
)

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def email_spelling(draw: st.DrawFn) -> str:
    email = draw(st.sampled_from(EMAILS))
    return draw(st.sampled_from(["", " "])) + draw(st.sampled_from([email, email.upper()]))


phone_spelling = st.sampled_from(PHONES).flatmap(lambda p: st.sampled_from(PHONE_SPELLINGS[p]))
junk = st.sampled_from(JUNK)


def events(*, with_user_id: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "email": st.one_of(email_spelling(), email_spelling(), junk),
        "phone": st.one_of(phone_spelling, phone_spelling, junk),
    }
    if with_user_id:
        optional["user_id"] = st.one_of(st.sampled_from(USER_IDS), junk)
    return st.fixed_dictionaries({}, optional=optional)


actions = st.lists(
    st.one_of(
        events(with_user_id=True).map(lambda body: ("event", body)),
        events(with_user_id=True).map(lambda body: ("event", body)),
        events(with_user_id=True).map(lambda body: ("event", body)),
        st.frozensets(st.sampled_from(sorted(RULES))).map(lambda kinds: ("rules", kinds)),
        st.just(("backfill", None)),
    ),
    max_size=10,
)


@contextmanager
def fresh_store() -> Iterator[TestClient]:
    """A new data folder and app for one Hypothesis example (fixtures would be shared)."""
    with tempfile.TemporaryDirectory() as folder:
        config = make_config(Path(folder) / "data")
        with TestClient(EventstitchApp(config), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {API_TOKEN}"
            create_source(client, id="hooks", identification=list(RULES.values()))
            yield client


def carried(body: dict[str, Any]) -> set[tuple[str, str]]:
    """The identifiers an event's payload carries, normalised as at ingest (whatever rules)."""
    found = set()
    for kind in RULES:
        value = normalise(kind, body.get(kind))
        if value is not None:
            found.add((kind, value))
    return found


def live_of(client: TestClient, profile_id: str) -> dict[str, Any]:
    """The live profile a profile id leads to, following `merged_into` (bounded)."""
    body = profile(client, profile_id)
    for _ in range(64):
        if body["merged_into"] is None:
            return body
        body = profile(client, body["merged_into"])
    raise AssertionError(f"no live profile behind {profile_id}")


def live_profiles(client: TestClient) -> dict[str, set[tuple[str, str]]]:
    """Every live profile holding one of the pool's identifiers, with its identifiers; checks
    on the way that each identifier has one live owner at most, which really holds it."""
    holders: dict[str, set[tuple[str, str]]] = {}
    for kind, value in ALL_IDENTIFIERS:
        found = find(client, f"{kind}:{value}")
        assert len(found) <= 1, (kind, value, found)
        if found:
            [body] = found
            assert body["merged_into"] is None, body
            held = {(i["kind"], i["value"]) for i in body["identifiers"]}
            assert (kind, value) in held, (kind, value, body)
            holders[body["id"]] = held
    return holders


def check_invariants(client: TestClient, answers: list[dict[str, Any]]) -> None:
    holders = live_profiles(client)
    seen: dict[tuple[str, str], str] = {}
    for profile_id, held in holders.items():
        assert len({v for k, v in held if k == "user_id"}) <= 1, held
        for identifier in held:
            assert seen.setdefault(identifier, profile_id) == profile_id, identifier
    stored = {e["id"]: e for e in stored_events(client, source_id="hooks")}
    answered = {answer["id"]: answer for answer in answers}
    assert set(answered) <= set(stored)
    for event_id, event in stored.items():
        if event["profile_id"] is None:
            assert event["converted_by"] is None
            continue
        live = live_of(client, event["profile_id"])
        assert live["id"] in holders, (event, live)  # a webhook profile holds an identifier
        kind, _, value = event["converted_by"].partition(":")
        assert (kind, value) in carried(event["properties"]), event
        said = answered[event_id]["profile_id"]
        if said is not None:
            assert live_of(client, said)["id"] == live["id"]


@SETTINGS
@given(steps=actions)
def test_each_identifier_has_one_live_owner_and_events_lead_to_live_profiles(
    steps: list[tuple[str, Any]],
) -> None:
    with fresh_store() as client:
        answers: list[dict[str, Any]] = []
        for action, argument in steps:
            if action == "event":
                answers.append(collect(client, "hooks", argument))
            elif action == "rules":
                rules = [RULES[kind] for kind in sorted(argument)]
                answer = client.patch("/api/sources/hooks", json={"identification": rules})
                assert answer.status_code == 200, answer.text
            else:
                backfill_in_app(client)
        check_invariants(client, answers)
        backfill_in_app(client)
        check_invariants(client, answers)


# -- order independence --------------------------------------------------------------------


def expected_grouping(bodies: list[dict[str, Any]]) -> set[frozenset[tuple[str, str]]]:
    """What the rules promise: events with an email create or join a profile and tie their
    phone to it; the groups are the connected identifiers. A phone never seen beside an email
    belongs to nobody."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parent[node] != node:
            node = parent[node]
        return node

    for body in bodies:
        found = carried(body)
        if not any(kind == "email" for kind, _ in found):
            continue
        for node in found:
            parent.setdefault(node, node)
        first, *rest = sorted(found)
        for node in rest:
            parent[root(node)] = root(first)
    groups: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for node in parent:
        groups.setdefault(root(node), set()).add(node)
    return {frozenset(g) for g in groups.values()}


def grouping_of(client: TestClient, bodies: list[dict[str, Any]]) -> set[frozenset[Any]]:
    """Post the events in order; the grouping of identifiers into live profiles, after
    checking that each event is linked exactly when one of its identifiers is owned."""
    answers = [collect(client, "hooks", body) for body in bodies]
    holders = live_profiles(client)
    owner_of = {i: pid for pid, held in holders.items() for i in held}
    for body, answer in zip(bodies, answers, strict=True):
        stored = client.get(f"/api/events/{answer['id']}").json()
        owners = {owner_of[i] for i in carried(body) if i in owner_of}
        assert len(owners) <= 1, (body, owners)
        if owners:
            assert stored["profile_id"] in owners, (body, stored)
        else:
            assert stored["profile_id"] is None, (body, stored)
    return {frozenset(held) for held in holders.values()}


@SETTINGS
@given(
    bodies=st.lists(events(with_user_id=False), min_size=1, max_size=8).flatmap(
        lambda bodies: st.tuples(st.just(bodies), st.permutations(bodies))
    )
)
def test_grouping_of_emails_and_phones_does_not_depend_on_event_order(
    bodies: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    in_order, shuffled = bodies
    expected = expected_grouping(in_order)

    with fresh_store() as first:
        grouping = grouping_of(first, in_order)
        backfill_in_app(first)
        after_backfill = {frozenset(h) for h in live_profiles(first).values()}
    with fresh_store() as second:
        other_grouping = grouping_of(second, shuffled)

    assert grouping == expected
    assert other_grouping == expected
    assert after_backfill == expected
