"""The Tracardi-compatible tracking API: profiles and sessions, profile-less calls, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source, stored_events
from tests.identity.support import (
    EMAIL_RULE,
    collect,
    event,
    find,
    identifiers,
    profile,
    system_events,
    track,
)


def tracardi_payload(**overrides: Any) -> dict[str, Any]:
    """A tracker call as Tracardi's JavaScript tracker sends it, extra fields and all."""
    payload: dict[str, Any] = {
        "source": {"id": "web"},
        "session": {"id": "s-unknown-1"},
        "profile": {"id": "p-unknown-1"},
        "context": {"browser": {"local": {"device": {"platform": "Linux"}}}},
        "properties": {"page": "home"},
        "events": [
            {
                "type": "Page View",
                "properties": {"url": "https://example.com/"},
                "context": {"page": {"title": "Home"}},
                "options": {},
                "id": "client-event-1",
                "tags": ["landing"],
            },
            {"type": "click", "properties": {"button": "buy"}},
        ],
        "options": {"profile": True, "saveSession": True},
        "metadata": {"time": {"insert": "2024-05-01T10:00:00.000Z"}},
        "request": {"headers": {"x-forwarded-for": "203.0.113.9"}},
        "ip": "203.0.113.9",
        "status": "ok",
    }
    payload.update(overrides)
    return payload


@pytest.fixture
def web(client: TestClient) -> TestClient:
    """The client, with a tracker source `web` and a webhook source `hooks`."""
    create_source(client, id="web", kind="tracker")
    create_source(client, id="hooks")
    return client


def test_tracardi_payload_with_extra_fields_creates_profile_and_session(web: TestClient) -> None:
    answer = track(web, tracardi_payload())

    assert answer["ok"] is True
    assert answer["profile_less"] is False
    assert answer["source"] == {"id": "web"}
    profile_id = answer["profile"]["id"]
    assert profile_id != "p-unknown-1"  # unknown ids get new ones
    assert answer["session"] == {"id": "s-unknown-1"}  # a new session keeps the tracker's id
    assert [e["type"] for e in answer["events"]] == ["page-view", "click"]
    assert [e["profile_id"] for e in answer["events"]] == [profile_id, profile_id]
    first = event(web, answer["events"][0]["id"])
    assert first["profile_id"] == profile_id
    assert first["session_id"] == "s-unknown-1"
    assert first["profile_less"] is False
    assert first["properties"] == {"url": "https://example.com/"}
    assert first["context"]["client_event_id"] == "client-event-1"
    assert first["context"]["tags"] == ["landing"]
    assert profile(web, profile_id)["merged_into"] is None
    assert len(system_events(web, "profile-created")) == 1


def test_a_known_session_keeps_its_profile(web: TestClient) -> None:
    first = track(web, tracardi_payload())

    again = track(web, tracardi_payload(profile=None))
    other_profile_hint = track(web, tracardi_payload(profile={"id": "p-unknown-2"}))

    assert again["profile"] == first["profile"]
    assert again["session"] == first["session"]
    assert other_profile_hint["profile"] == first["profile"]
    assert len(system_events(web, "profile-created")) == 1


def test_a_known_profile_id_is_reused_with_a_new_session(web: TestClient) -> None:
    first = track(web, tracardi_payload(session=None))
    profile_id = first["profile"]["id"]

    again = track(web, tracardi_payload(session=None, profile={"id": profile_id}))

    assert again["profile"]["id"] == profile_id
    assert again["session"]["id"] != first["session"]["id"]
    assert {e["profile_id"] for e in stored_events(web, source_id="web")} == {profile_id}


def test_call_without_profile_or_session_gets_both(web: TestClient) -> None:
    answer = track(web, tracardi_payload(session=None, profile=None))

    assert answer["profile"]["id"]
    assert answer["session"]["id"]
    assert event(web, answer["events"][0]["id"])["session_id"] == answer["session"]["id"]


def test_a_merged_profile_id_resolves_to_the_survivor(web: TestClient) -> None:
    rules = [EMAIL_RULE, {"path": "other_email", "kind": "email"}]
    web.patch("/api/sources/hooks", json={"identification": rules})
    older = collect(web, "hooks", {"email": "a@a.com"})
    newer = collect(web, "hooks", {"email": "b@b.com"})
    collect(web, "hooks", {"email": "a@a.com", "other_email": "b@b.com"})

    answer = track(web, tracardi_payload(session=None, profile={"id": newer["profile_id"]}))

    assert answer["profile"]["id"] == older["profile_id"]
    assert [e["profile_id"] for e in answer["events"]] == [older["profile_id"]] * 2


@pytest.mark.parametrize(
    ("params", "body_flag"),
    [({"profile_less": "true"}, None), ({}, True), ({"profile_less": "1"}, None)],
    ids=["query", "body", "query-1"],
)
def test_profile_less_tracking_stores_events_without_profile_or_session(
    web: TestClient, params: dict[str, str], body_flag: bool | None
) -> None:
    payload = tracardi_payload(**({"profile_less": body_flag} if body_flag else {}))

    answer = track(web, payload, **params)

    assert answer["profile"] is None
    assert answer["session"] is None
    assert answer["profile_less"] is True
    assert [e["profile_id"] for e in answer["events"]] == [None, None]
    for item in answer["events"]:
        stored = event(web, item["id"])
        assert stored["profile_less"] is True
        assert stored["profile_id"] is None
        assert stored["session_id"] is None
    assert system_events(web, "profile-created") == []
    # The session id the tracker sent was not created: a later call gets a fresh profile.
    later = track(web, tracardi_payload(profile=None))
    assert later["profile"]["id"] is not None
    assert len(system_events(web, "profile-created")) == 1


def test_tracked_profile_gains_identifiers_from_a_tracker_rule(web: TestClient) -> None:
    web.patch("/api/sources/web", json={"identification": [{"path": "email", "kind": "email"}]})
    events = [{"type": "sign-up", "properties": {"email": " Jane@Example.org"}}]

    answer = track(web, tracardi_payload(events=events))

    profile_id = answer["profile"]["id"]
    assert identifiers(profile(web, profile_id)) == {"email:jane@example.org"}
    assert find(web, "email:jane@example.org")[0]["id"] == profile_id


def test_anonymous_visit_joins_the_profile_that_already_owns_the_email(web: TestClient) -> None:
    web.patch("/api/sources/hooks", json={"identification": [EMAIL_RULE]})
    web.patch("/api/sources/web", json={"identification": [{"path": "email", "kind": "email"}]})
    order = collect(web, "hooks", {"email": "a@a.com"})
    anonymous = track(web, tracardi_payload(events=[{"type": "page-view"}]))
    assert anonymous["profile"]["id"] != order["profile_id"]

    login = track(
        web,
        tracardi_payload(
            profile=None, events=[{"type": "login", "properties": {"email": "a@a.com"}}]
        ),
    )

    # The visitor's profile is younger: it is merged into the one that owned the email.
    assert login["profile"]["id"] == order["profile_id"]
    assert profile(web, anonymous["profile"]["id"])["merged_into"] == order["profile_id"]
    session_events = stored_events(web, source_id="web")
    assert {e["profile_id"] for e in session_events} == {order["profile_id"]}
    again = track(web, tracardi_payload(profile=None, events=[{"type": "page-view"}]))
    assert again["profile"]["id"] == order["profile_id"]  # the session moved with the merge


# -- refusals: one error shape, nothing stored ---------------------------------------------


def _nothing_stored(client: TestClient) -> None:
    assert stored_events(client, source_id="web") == []
    assert stored_events(client, source_id="hooks") == []
    assert system_events(client, "profile-created") == []


def test_track_refuses_a_webhook_source(web: TestClient) -> None:
    answer = web.post("/track", json=tracardi_payload(source={"id": "hooks"}))

    assert_error_shape(answer, 403)
    _nothing_stored(web)


def test_track_refuses_a_disabled_tracker_source(web: TestClient) -> None:
    web.patch("/api/sources/web", json={"enabled": False})

    assert_error_shape(web.post("/track", json=tracardi_payload()), 403)
    _nothing_stored(web)


def test_track_refuses_an_unknown_source(web: TestClient) -> None:
    answer = web.post("/track", json=tracardi_payload(source={"id": "nope"}))

    body = assert_error_shape(answer, 404)
    assert "nope" in body["error"]
    _nothing_stored(web)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"events": []}, "events"),
        ({"events": {"type": "page-view"}}, "events"),
        ({"events": None}, "events"),
        ({"events": [{"properties": {}}]}, "events[0].type"),
        ({"events": [{"type": "a"}, {"type": "  "}]}, "events[1].type"),
        ({"events": ["page-view"]}, "events[0]"),
        ({"events": [{"type": "a", "properties": [1]}]}, "events[0].properties"),
        ({"source": None}, "source"),
        ({"source": {"id": 5}}, "source.id"),
        ({"session": {"id": ""}}, "session.id"),
    ],
    ids=[
        "empty-events",
        "events-not-a-list",
        "events-null",
        "event-without-type",
        "blank-type",
        "event-not-object",
        "properties-not-object",
        "no-source",
        "source-id-not-string",
        "empty-session-id",
    ],
)
def test_track_refuses_a_bad_payload_naming_the_field(
    web: TestClient, overrides: dict[str, Any], field: str
) -> None:
    answer = web.post("/track", json=tracardi_payload(**overrides))

    body = assert_error_shape(answer, 422)
    assert body["errors"][0]["field"] == field
    _nothing_stored(web)


def test_track_refuses_malformed_json(web: TestClient) -> None:
    answer = web.post(
        "/track",
        content=b'{"source": {"id": "web"}, "events": [',
        headers={"Content-Type": "application/json"},
    )

    assert_error_shape(answer, 400)
    _nothing_stored(web)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_track_refuses_a_content_type_that_is_not_json_naming_it(
    web: TestClient, content_type: str
) -> None:
    body = json.dumps(tracardi_payload()).encode()  # JSON, but said to be something else
    answer = web.post("/track", content=body, headers={"Content-Type": content_type})

    error = assert_error_shape(answer, 415)
    media = content_type.split(";")[0]
    assert f"content type {media!r} is not supported" in error["error"]
    assert error["errors"] == [{"field": "content-type", "value": media}]
    assert error["error"].endswith(  # /track takes no forms
        "send one of: application/json, application/*+json, text/plain (JSON)"
    )
    _nothing_stored(web)


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain;charset=UTF-8", "application/ld+json"]
)
def test_track_takes_json_under_the_types_trackers_send(
    web: TestClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps(tracardi_payload()).encode()
    assert web.post("/track", content=body, headers=headers).status_code == 200


@pytest.mark.parametrize("client_id", [5.5, True, {"id": "x"}, ["x"], "x" * 129], ids=str)
def test_track_refuses_a_client_event_id_that_is_not_text_or_an_integer(
    web: TestClient, client_id: Any
) -> None:
    events = [{"type": "a"}, {"type": "b", "id": client_id}]
    answer = web.post("/track", json=tracardi_payload(events=events))

    error = assert_error_shape(answer, 422)
    assert error["errors"][0]["field"] == "events[1].id"
    _nothing_stored(web)


def test_track_keeps_an_integer_client_event_id_as_its_digits(web: TestClient) -> None:
    events = [{"type": "a", "id": 12345678901234}, {"type": "b", "id": "c-1"}, {"type": "c"}]
    answer = track(web, tracardi_payload(events=events))

    stored = [event(web, e["id"])["context"].get("client_event_id") for e in answer["events"]]
    assert stored == ["12345678901234", "c-1", None]


def test_track_refuses_a_body_that_is_not_an_object(web: TestClient) -> None:
    assert_error_shape(web.post("/track", json=[tracardi_payload()]), 422)
    _nothing_stored(web)


def test_track_refuses_get(web: TestClient) -> None:
    answer = web.get("/track")

    assert_error_shape(answer, 405)
    assert answer.headers["allow"] == "POST"


def test_collect_refuses_a_tracker_source(web: TestClient) -> None:
    assert_error_shape(web.post("/collect/page-view/web", json={"email": "a@a.com"}), 403)
    _nothing_stored(web)


def test_track_answer_names_the_profile_the_event_is_stored_with(web: TestClient) -> None:
    user_id = {"path": "user_id", "kind": "user_id"}
    web.patch("/api/sources/hooks", json={"identification": [EMAIL_RULE, user_id]})
    web.patch(
        "/api/sources/web",
        json={"identification": [{"path": "email", "kind": "email"}, user_id]},
    )
    collect(web, "hooks", {"email": "a@a.com", "user_id": "u1"})
    visit = {"source": {"id": "web"}, "session": {"id": "s-1"}}
    track(web, {**visit, "events": [{"type": "sign-in", "properties": {"user_id": "u2"}}]})

    login = track(web, {**visit, "events": [{"type": "login", "properties": {"email": "a@a.com"}}]})

    [answered] = login["events"]
    assert event(web, answered["id"])["profile_id"] == answered["profile_id"]
