"""Identity invariants under any sequence of events and rule changes, on the real store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.identity import service
from tests.conftest import API_TOKEN, create_source, make_config

EMAILS = ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
PHONES = ["+48601234567", "+48601234568", "+12015550123"]
USER_IDS = ["u1", "u2", "u3"]
JUNK = ["undefined", "null", "0"]
ALL_RULES = [
    {"path": "email", "kind": "email", "create_profile": True},
    {"path": "phone", "kind": "phone"},
    {"path": "uid", "kind": "user_id"},
]

payloads = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(EMAILS + JUNK),
        "phone": st.sampled_from(PHONES + JUNK),
        "uid": st.sampled_from(USER_IDS + JUNK),
    },
)
steps = st.lists(
    st.one_of(
        payloads.map(lambda p: ("event", p)),
        st.sets(st.integers(0, 2), min_size=1).map(lambda s: ("rules", sorted(s))),
        st.just(("backfill", None)),
    ),
    min_size=1,
    max_size=12,
)
emails_and_phones = st.lists(
    st.fixed_dictionaries(
        {}, optional={"email": st.sampled_from(EMAILS), "phone": st.sampled_from(PHONES)}
    ),
    min_size=1,
    max_size=8,
)


class Store:
    """A fresh real store for one example."""

    def __init__(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        app = EventstitchApp(make_config(Path(self.folder.name)))
        self.client = TestClient(app)
        self.client.__enter__()
        self.client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(self.client, id="hooks", identification=ALL_RULES)
        self.app = app

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.folder.cleanup()

    def post(self, payload: dict[str, Any]) -> None:
        assert self.client.post("/collect/e/hooks", json=payload).status_code == 200

    def owners(self) -> dict[tuple[str, str], str]:
        found = {}
        for kind, values in (("email", EMAILS), ("phone", PHONES), ("user_id", USER_IDS)):
            for value in values:
                profiles = self.client.get(
                    "/api/profiles", params={"identifier": f"{kind}:{value}"}
                ).json()["profiles"]
                assert len(profiles) <= 1
                if profiles:
                    assert profiles[0]["merged_into"] is None  # owners are live
                    found[(kind, value)] = profiles[0]["id"]
        return found

    def grouping(self) -> set[frozenset[tuple[str, str]]]:
        groups: dict[str, set[tuple[str, str]]] = {}
        for identifier, owner in self.owners().items():
            groups.setdefault(owner, set()).add(identifier)
        return {frozenset(g) for g in groups.values()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_identifiers_have_one_owner_and_linked_events_reach_a_live_profile(
    sequence: list[tuple[str, Any]],
) -> None:
    store = Store()
    try:
        for action, value in sequence:
            if action == "event":
                store.post(value)
            elif action == "rules":
                rules = [ALL_RULES[i] for i in value]
                assert (
                    store.client.patch(
                        "/api/sources/hooks", json={"identification": rules}
                    ).status_code
                    == 200
                )
            else:
                store.client.portal.call(  # type: ignore[union-attr]
                    lambda: service.backfill(ctx=store.app.ctx, source_id="hooks")
                )
        owners = store.owners()
        profiles: dict[str, dict[str, Any]] = {}
        for owner in set(owners.values()):
            profile = store.client.get(f"/api/profiles/{owner}").json()
            profiles[owner] = profile
            held = {(i["kind"], i["value"]) for i in profile["identifiers"]}
            assert held == {i for i, o in owners.items() if o == owner}
            assert len([i for i in held if i[0] == "user_id"]) <= 1  # single-valued
        events = store.client.get("/api/events", params={"source_id": "hooks", "limit": 100})
        for event in events.json()["events"]:
            if event["profile_id"] is None:
                continue
            answer = store.client.get(f"/api/profiles/{event['profile_id']}").json()
            live = answer.get("profile", answer)
            assert live["merged_into"] is None
    finally:
        store.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(emails_and_phones, st.randoms(use_true_random=False))
def test_grouping_of_identifiers_does_not_depend_on_event_order(
    events: list[dict[str, str]], random: Any
) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)
    groupings = []
    for order in (events, shuffled):
        store = Store()
        try:
            for payload in order:
                store.post(payload)
            groupings.append(store.grouping())
        finally:
            store.close()
    assert groupings[0] == groupings[1]
