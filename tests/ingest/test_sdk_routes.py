"""The SDK routes (Segment/RudderStack `/v1/*`, PostHog `/batch/` and friends): keys, batches
checked message by message, refusals in each SDK's error shape, limits, gzip."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from tests.conftest import API_TOKEN, create_source, make_config, stored_events


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    """POST without the API token the test client carries (it would be read as a key)."""
    return client.post(
        path,
        content=body if isinstance(body, bytes) else orjson.dumps(body),
        headers={"Authorization": "", "Content-Type": "application/json", **headers},
    )


def tracker(client: TestClient, source_id: str = "app") -> str:
    key: str = create_source(client, id=source_id, kind="tracker")["write_key"]
    return key


def app_events(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    return stored_events(client, source_id="app", **params)


def live_profile(client: TestClient, profile_id: str) -> dict[str, Any]:
    """A profile, or the one it was merged into."""
    body: dict[str, Any] = client.get(f"/api/profiles/{profile_id}").json()
    survivor: dict[str, Any] = body.get("profile", body)
    return survivor


def track(message_id: str, event: str = "Order Completed", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "messageId": message_id, **fields}


def test_a_segment_batch_is_stored_once_and_a_retry_adds_nothing(client: TestClient) -> None:
    key = tracker(client)
    batch = {"batch": [track("m1", anonymousId="a1"), track("m2", anonymousId="a1")]}
    for _ in range(2):
        answer = post(client, "/v1/batch", batch, **basic(key))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True}
    events = app_events(client)
    assert [e["type"] for e in events] == ["order-completed", "order-completed"]
    assert all(e["profile_id"] is None for e in events)


@pytest.mark.parametrize("where", ["basic", "x-write-key", "writeKey", "bearer", "api_key"])
def test_the_key_is_read_where_each_sdk_sends_it_and_never_stored(
    client: TestClient, where: str
) -> None:
    key = tracker(client)
    body: dict[str, Any] = {"batch": [track("m1", anonymousId="a1")]}
    headers: dict[str, str] = {}
    if where == "basic":
        headers = basic(key)
    elif where == "x-write-key":
        headers = {"X-Write-Key": key}
    elif where == "bearer":
        headers = {"Authorization": f"Bearer {key}"}
    else:
        body[where] = key
    answer = post(client, "/v1/batch", body, **headers)
    assert answer.status_code == 200, answer.text
    (event,) = app_events(client)
    assert key not in orjson.dumps(event).decode()


def test_one_bad_message_is_quarantined_and_the_rest_stored(client: TestClient) -> None:
    key = tracker(client)
    batch = {
        "batch": [
            track("m1", anonymousId="a1"),
            track("m2", event="bad$name", anonymousId="a1"),
            {"type": "launch", "messageId": "m3"},
        ]
    }
    answer = post(client, "/v1/batch", batch, **basic(key))
    assert answer.status_code == 200, answer.text
    assert len(app_events(client)) == 1
    kept = client.get("/api/rejections", params={"source_id": "app"}).json()["rejections"]
    assert sorted(r["reason"] for r in kept) == ["bad_event_type", "bad_message"]
    assert sorted(r["errors"][0]["message_index"] for r in kept) == [1, 2]


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/v1/batch", {}, 401, "missing_write_key"),
        ("/v1/batch", basic("wk_not-a-key-of-anyone"), 401, "unknown_write_key"),
        ("/batch/", {"Authorization": "Bearer wk_not-a-key-of-anyone"}, 401, "unknown_write_key"),
    ],
)
def test_an_unknown_or_missing_key_is_refused_in_the_sdks_shape(
    client: TestClient, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    tracker(client)
    answer = post(client, path, {"batch": [track("m1", anonymousId="a1")]}, **headers)
    assert answer.status_code == status
    if path.startswith("/v1/"):
        assert set(answer.json()) == {"code", "message"}
        assert answer.json()["code"] == code
    else:
        assert answer.json()["type"] == "authentication_error"
        assert answer.json()["code"] == code
    assert app_events(client) == []


def test_a_disabled_source_and_a_body_that_is_no_batch_are_refused(client: TestClient) -> None:
    key = tracker(client)
    assert post(client, "/v1/batch", {"events": []}, **basic(key)).json()["code"] == "not_a_batch"
    client.patch("/api/sources/app", json={"enabled": False})
    answer = post(
        client, "/batch/", {"api_key": key, "batch": [{"event": "x", "distinct_id": "d"}]}
    )
    assert answer.status_code == 403
    assert answer.json() == {
        "type": "authentication_error",
        "code": "disabled_source",
        "detail": "source 'app' is disabled",
    }


def test_a_rotated_key_works_during_its_grace_and_not_after(client: TestClient) -> None:
    old = tracker(client)
    client.post("/api/sources/app/rotate-key", json={"grace_seconds": 3600})
    new = client.get("/api/sources/app").json()["write_key"]
    assert post(client, "/v1/track", track("m1", userId="u"), **basic(old)).status_code == 200
    assert post(client, "/v1/track", track("m2", userId="u"), **basic(new)).status_code == 200
    client.post("/api/sources/app/rotate-key", json={"grace_seconds": 0})
    assert post(client, "/v1/track", track("m3", userId="u"), **basic(new)).status_code == 401
    assert len(app_events(client)) == 2


@pytest.fixture
def small(tmp_path: Any) -> Iterator[tuple[TestClient, str]]:
    """A client whose SDK limits are small: 600 bytes a batch, 200 a message, 3 messages."""
    config: Config = make_config(
        tmp_path / "data",
        sdk_max_batch_bytes=600,
        sdk_max_message_bytes=200,
        sdk_max_batch_messages=3,
    )
    with TestClient(EventstitchApp(config), raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield test_client, tracker(test_client)


def _message_of(size: int, message_id: str) -> dict[str, Any]:
    message = track(message_id, anonymousId="a", properties={"pad": ""})
    message["properties"]["pad"] = "x" * (size - len(orjson.dumps(message)))
    assert len(orjson.dumps(message)) == size
    return message


def test_a_message_at_the_limit_is_stored_and_one_past_it_quarantined(
    small: tuple[TestClient, str],
) -> None:
    client, key = small
    at, past = _message_of(200, "at"), _message_of(201, "past")
    answer = post(client, "/v1/batch", {"batch": [at, past]}, **basic(key))
    assert answer.status_code == 200, answer.text
    (event,) = app_events(client)
    assert len(event["properties"]["pad"]) == len(at["properties"]["pad"])


def test_a_batch_past_its_bytes_or_messages_is_refused_whole(
    small: tuple[TestClient, str],
) -> None:
    client, key = small

    def batch_of(size: int) -> bytes:
        body = {"batch": [track("m1", anonymousId="a")], "pad": ""}
        body["pad"] = "x" * (size - len(orjson.dumps(body)))
        return orjson.dumps(body)

    assert post(client, "/v1/batch", batch_of(600), **basic(key)).status_code == 200
    past = post(client, "/v1/batch", batch_of(601), **basic(key))
    assert past.status_code == 413
    assert past.json()["code"] == "body_too_large"
    three = {"batch": [track(f"n{i}", anonymousId="a") for i in range(3)]}
    assert post(client, "/v1/batch", three, **basic(key)).status_code == 200
    four = {"batch": [track(f"k{i}", anonymousId="a") for i in range(4)]}
    assert post(client, "/v1/batch", four, **basic(key)).json()["code"] == "too_many_messages"
    assert len(app_events(client)) == 4


def test_gzip_is_decoded_and_a_bomb_refused_by_its_decoded_size(
    small: tuple[TestClient, str],
) -> None:
    client, key = small
    body = gzip.compress(orjson.dumps({"batch": [track("m1", anonymousId="a")]}))
    answer = post(client, "/v1/batch", body, **basic(key), **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    bomb = gzip.compress(b'{"batch": [], "pad": "' + b"x" * 100_000 + b'"}')
    assert len(bomb) < 600
    refused = post(client, "/v1/batch", bomb, **basic(key), **{"Content-Encoding": "gzip"})
    assert refused.status_code == 413
    assert len(app_events(client)) == 1


def test_the_client_timestamp_is_corrected_for_clock_skew(client: TestClient) -> None:
    key = tracker(client)
    batch = {
        "batch": [track("m1", anonymousId="a", timestamp="2020-01-01T00:00:00.000Z")],
        "sentAt": "2020-01-01T00:00:10.000Z",
    }
    post(client, "/v1/batch", batch, **basic(key))
    (event,) = app_events(client)
    context = event["context"]
    assert context["timestamp"] == "2020-01-01T00:00:00.000Z"
    assert context["sent_at"] == "2020-01-01T00:00:10.000Z"
    received = event["received_at"]
    corrected = context["timestamp_corrected"]
    # ten seconds before receipt, whatever the client's clock said
    from datetime import datetime

    gap = datetime.fromisoformat(received) - datetime.fromisoformat(corrected)
    assert gap.total_seconds() == pytest.approx(10, abs=0.01)


def test_anonymous_events_stay_profile_less_until_identify_links_them(
    client: TestClient,
) -> None:
    key = tracker(client)
    post(client, "/v1/batch", {"batch": [track("m1", anonymousId="anon-1")]}, **basic(key))
    assert (
        client.get("/api/events", params={"source_id": "app"}).json()["events"][0]["profile_id"]
        is None
    )
    identify = {
        "type": "identify",
        "messageId": "m2",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "traits": {"email": "Ann@Example.com", "plan": "pro"},
    }
    post(client, "/v1/identify", identify, **basic(key))
    events = app_events(client)
    profile_ids = {e["profile_id"] for e in events}
    assert len(profile_ids) == 1
    assert None not in profile_ids
    profile = live_profile(client, profile_ids.pop())
    assert profile["traits"]["plan"] == "pro"
    assert {"kind": "email", "value": "ann@example.com"} in profile["identifiers"]


def test_alias_merges_the_two_profiles(client: TestClient) -> None:
    key = tracker(client)
    first = {
        "type": "identify",
        "messageId": "m1",
        "anonymousId": "a1",
        "traits": {"email": "a@x.io"},
    }
    second = {"type": "identify", "messageId": "m2", "userId": "u2"}
    post(client, "/v1/batch", {"batch": [first, second]}, **basic(key))
    before = {e["profile_id"] for e in app_events(client)}
    assert len(before) == 2
    alias = {"type": "alias", "messageId": "m3", "previousId": "a1", "userId": "u2"}
    assert post(client, "/v1/alias", alias, **basic(key)).status_code == 200
    survivors = {live_profile(client, p)["id"] for p in before if p}
    assert len(survivors) == 1


def test_posthog_set_once_never_overwrites_and_no_person_profile_stays_profile_less(
    client: TestClient,
) -> None:
    key = tracker(client)
    batch = {
        "api_key": key,
        "batch": [
            {
                "event": "$set",
                "distinct_id": "d1",
                "uuid": "u1",
                "properties": {"$set": {"plan": "free"}, "$set_once": {"first_seen": "mon"}},
            },
            {
                "event": "$set",
                "distinct_id": "d1",
                "uuid": "u2",
                "properties": {"$set": {"plan": "pro"}, "$set_once": {"first_seen": "tue"}},
            },
            {
                "event": "$pageview",
                "distinct_id": "d1",
                "uuid": "u3",
                "properties": {"$process_person_profile": False},
            },
        ],
    }
    answer = post(client, "/batch/", batch)
    assert answer.json() == {"status": 1}
    events = {e["type"]: e for e in app_events(client)}
    assert events["page"]["profile_id"] is None
    profile = live_profile(client, events["identify"]["profile_id"])
    assert profile["traits"] == {"plan": "pro", "first_seen": "mon"}
