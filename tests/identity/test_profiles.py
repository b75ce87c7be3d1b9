"""Merges and their guards, the tracking API, erasure, and system events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from tests.conftest import API_TOKEN, assert_error_shape, create_source, make_config, stored_events

RULES = [
    {"path": "email", "kind": "email", "create_profile": True},
    {"path": "phone", "kind": "phone", "create_profile": True},
    {"path": "uid", "kind": "user_id"},
]


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks", identification=RULES, traits={"plan": "plan"})
    return client


def collect(client: TestClient, **body: Any) -> dict[str, Any]:
    answer = client.post("/collect/e/hooks", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_an_event_with_identifiers_of_two_profiles_merges_them_into_the_older(
    hooks: TestClient,
) -> None:
    older = collect(hooks, email="a@a.com", plan="free")["profile_id"]
    newer = collect(hooks, phone="+48601234567", plan="pro")["profile_id"]
    assert older != newer
    bridge = collect(hooks, email="a@a.com", phone="+48601234567")
    assert bridge["profile_id"] == older
    survivor = hooks.get(f"/api/profiles/{older}").json()
    assert {(i["kind"], i["value"]) for i in survivor["identifiers"]} == {
        ("email", "a@a.com"),
        ("phone", "+48601234567"),
    }
    assert survivor["traits"] == {"plan": "free"}  # the survivor's own values win
    assert len(survivor["recent_events"]) == 3
    assert survivor["merges"][0]["merged"] == newer
    pointer = hooks.get(f"/api/profiles/{newer}").json()
    assert pointer["merged_into"] == older
    assert pointer["profile"]["id"] == older
    [found] = hooks.get("/api/profiles", params={"identifier": "phone:+48 601 234 567"}).json()[
        "profiles"
    ]
    assert found["id"] == older
    assert stored_events(hooks, source_id="system", type="profiles-merged")


def test_profiles_holding_different_user_ids_are_not_merged(hooks: TestClient) -> None:
    first = collect(hooks, email="a@a.com", uid="1")["profile_id"]
    second = collect(hooks, email="b@b.com", uid="2")["profile_id"]
    shared = collect(hooks, email="a@a.com", phone="+48601234567", uid="2")
    assert shared["profile_id"] == first
    one = hooks.get(f"/api/profiles/{first}").json()
    two = hooks.get(f"/api/profiles/{second}").json()
    assert two["merged_into"] is None
    assert {"kind": "user_id", "value": "1"} in one["identifiers"]
    assert {"kind": "user_id", "value": "2"} not in one["identifiers"]  # never a second user_id
    refusals = [m for m in one["merges"] if m["refused"]]
    assert refusals
    assert refusals[0]["kind"] == "user_id"
    assert stored_events(hooks, source_id="system", type="profile-merge-refused")


def test_tracking_api_creates_and_reuses_profile_and_session(client: TestClient) -> None:
    create_source(client, id="web", kind="tracker")
    payload = {
        "source": {"id": "web"},
        "session": {"id": "s-1"},
        "profile": {"id": "unknown-profile"},
        "metadata": {"time": {"insert": "2026-11-22 10:00:00"}},
        "options": {"profile": True},
        "request": {"headers": {}},
        "ip": "1.2.3.4",
        "status": "collected",
        "context": {"page": "/"},
        "events": [
            {"type": "Page View", "properties": {"url": "/"}, "id": "client-1", "tags": ["a"]},
            {"type": "click"},
        ],
    }
    first = client.post("/track", json=payload).json()
    assert first["ok"] is True
    assert first["session"] == {"id": "s-1"}
    pid = first["profile"]["id"]
    assert pid != "unknown-profile"
    assert [e["type"] for e in first["events"]] == ["page-view", "click"]
    stored = client.get(f"/api/events/{first['events'][0]['id']}").json()
    assert stored["profile_id"] == pid
    assert stored["session_id"] == "s-1"
    assert stored["profile_less"] is False
    assert stored["context"]["client_event_id"] == "client-1"
    again = client.post(
        "/track",
        json={"source": {"id": "web"}, "session": {"id": "s-1"}, "events": [{"type": "x"}]},
    ).json()
    assert again["profile"]["id"] == pid
    by_profile = client.post(
        "/track", json={"source": {"id": "web"}, "profile": {"id": pid}, "events": [{"type": "y"}]}
    ).json()
    assert by_profile["profile"]["id"] == pid
    assert by_profile["session"]["id"] != "s-1"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"source": {"id": "hooks"}, "events": [{"type": "x"}]}, 403, None),
        ({"source": {"id": "nope"}, "events": [{"type": "x"}]}, 404, None),
        ({"source": {"id": "web"}, "events": []}, 422, "events"),
        ({"source": {"id": "web"}, "events": "x"}, 422, "events"),
        ({"source": {"id": "web"}, "events": [{"properties": {}}]}, 422, "events[0].type"),
        ({"events": [{"type": "x"}]}, 422, "source"),
        (
            {"source": {"id": "web"}, "events": [{"type": "x", "properties": [1]}]},
            422,
            "events[0].properties",
        ),
    ],
)
def test_tracking_refusals_store_nothing(
    hooks: TestClient, body: dict[str, Any], status: int, field: str | None
) -> None:
    create_source(hooks, id="web", kind="tracker")
    error = assert_error_shape(hooks.post("/track", json=body), status)
    if field:
        assert error["errors"][0]["field"] == field
    assert stored_events(hooks, source_id=["web", "hooks"]) == []


def test_tracking_refuses_malformed_json_and_other_methods(hooks: TestClient) -> None:
    assert_error_shape(
        hooks.post("/track", content=b"{", headers={"content-type": "application/json"}), 400
    )
    assert_error_shape(hooks.get("/track"), 405)


def test_erasure_removes_the_profile_its_merged_ones_and_their_events(hooks: TestClient) -> None:
    older = collect(hooks, email="a@a.com")["profile_id"]
    newer = collect(hooks, phone="+48601234567")["profile_id"]
    collect(hooks, email="a@a.com", phone="+48601234567")
    collect(hooks, email="other@x.com")
    before = hooks.get("/api/insights/counts", params={"source_id": "hooks"}).json()["total"]
    erased = hooks.delete(f"/api/profiles/{newer}").json()
    assert erased == {"ok": True, "profile_id": older, "profiles_removed": 2, "events_removed": 3}
    assert_error_shape(hooks.get(f"/api/profiles/{older}"), 404)
    assert (
        hooks.get("/api/profiles", params={"identifier": "email:a@a.com"}).json()["profiles"] == []
    )
    after = hooks.get("/api/insights/counts", params={"source_id": "hooks"}).json()["total"]
    assert after == before - 3
    assert len(stored_events(hooks, source_id="hooks")) == 1


def test_system_events_can_be_turned_off(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path, system_events=False))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks", identification=RULES)
        client.patch("/api/sources/hooks", json={"enabled": False})
        assert stored_events(client, source_id="system") == []


def test_the_system_source_takes_no_webhooks(hooks: TestClient) -> None:
    assert_error_shape(hooks.post("/collect/x/system", json={}), 403)
