"""Refusals by signature and by rate limit in the quarantine: kept without the secrets they
carried, and replayable by an operator (a replay passes signature and rate limit by: the
operator holds the API token, and the stored request never carries the signature)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.ingest.storing import DELIVERY_ID_HEADERS
from eventstitch.rejections.scrub import HEADERS_KEPT_WITHOUT_SOURCE
from tests.conftest import all_events, assert_error_shape, create_source
from tests.ingest.test_signed_collect import BODY, GITHUB_SECRET, JSON, TOKEN, github
from tests.rejections.test_rejections_api import rejections


def test_a_bad_github_signature_is_kept_without_the_signature_and_replays(
    client: TestClient,
) -> None:
    create_source(client, id="gh", signature={"preset": "github", "secrets": [GITHUB_SECRET]})
    forged = github(BODY, secret="not-the-secret-0123456789")
    assert_error_shape(client.post("/collect/push/gh", content=BODY, headers=forged), 401)
    [kept] = rejections(client)
    assert kept["reason"] == "bad_signature"
    assert kept["source_id"] == "gh"
    shown = client.get(f"/api/rejections/{kept['id']}").json()
    assert "x-hub-signature-256" not in shown["headers"]
    assert forged["X-Hub-Signature-256"] not in str(shown)
    assert all_events(client, source_id="gh") == []

    replay = client.post(f"/api/rejections/{kept['id']}/replay")
    assert replay.status_code == 200, replay.text
    [event] = all_events(client, source_id="gh")
    assert event["id"] == replay.json()["id"]
    assert event["properties"] == {"order": 42}


def test_a_custom_signature_header_and_a_query_token_are_not_kept(client: TestClient) -> None:
    secret = "generic-secret-0123456789"
    create_source(
        client,
        id="gen",
        signature={"preset": "hmac", "secrets": [secret], "header": "X-Body-Check"},
    )
    create_source(client, id="tok", signature={"preset": "token", "secrets": [TOKEN]})
    wrong = hmac.new(b"wrong-secret-0123456789", BODY, hashlib.sha256).hexdigest()
    headers = {**JSON, "X-Body-Check": wrong}
    assert_error_shape(client.post("/collect/o/gen", content=BODY, headers=headers), 401)
    leaked = "tok-wrong-secret-0123456789"
    assert_error_shape(client.get(f"/collect/o/tok?a=1&token={leaked}"), 401)
    kept = {
        r["source_id"]: client.get(f"/api/rejections/{r['id']}").json() for r in rejections(client)
    }
    assert "x-body-check" not in kept["gen"]["headers"]
    assert wrong not in str(kept["gen"])
    assert kept["tok"]["query"] == "a=1"
    assert leaked not in str(kept["tok"])


def test_a_rate_limited_request_is_kept_and_its_replay_is_not_limited(
    client: TestClient,
) -> None:
    create_source(client, id="slow", rate_limit={"per_second": 0.01, "burst": 1})
    assert client.post("/collect/o/slow", json={"n": 1}).status_code == 200
    limited = client.post("/collect/o/slow", json={"n": 2})
    assert_error_shape(limited, 429)
    [kept] = rejections(client)
    assert kept["reason"] == "rate_limited"
    replay = client.post(f"/api/rejections/{kept['id']}/replay")
    assert replay.status_code == 200, replay.text
    assert sorted(e["properties"]["n"] for e in all_events(client, source_id="slow")) == [1, 2]
    assert_error_shape(client.post("/collect/o/slow", json={"n": 3}), 429)  # still limited


def hook_key(secret: str) -> dict[str, Any]:
    """A shared token in a header whose name does not look secret."""
    return {"preset": "token", "secrets": [secret], "header": "X-Hook-Key"}


def test_a_custom_header_is_not_kept_when_the_refusal_came_before_the_source_was_read(
    client: TestClient,
) -> None:
    secret = "hook-key-secret-0123456789"
    create_source(client, id="hk", signature=hook_key(secret))
    headers = {**JSON, "X-Hook-Key": secret}
    assert_error_shape(client.post("/collect/bad$type/hk", content=BODY, headers=headers), 400)
    [kept] = rejections(client)
    assert kept["reason"] == "bad_event_type"
    shown = client.get(f"/api/rejections/{kept['id']}").json()
    assert "x-hook-key" not in shown["headers"]
    assert secret not in str(shown)


def test_a_replay_never_stores_the_header_its_source_signs_with(client: TestClient) -> None:
    secret = "hook-key-secret-0123456789"
    headers = {**JSON, "X-Hook-Key": secret}
    assert_error_shape(client.post("/collect/o/later", content=BODY, headers=headers), 404)
    [kept] = rejections(client)  # no source known then: only harmless headers are kept
    create_source(client, id="later", signature=hook_key(secret))
    replay = client.post(f"/api/rejections/{kept['id']}/replay")
    assert replay.status_code == 200, replay.text
    [event] = all_events(client, source_id="later")
    assert "x-hook-key" not in event["context"]["headers"]
    assert secret not in str(event)


@pytest.mark.parametrize(
    "carrier",
    [
        "a=6;token={}",  # `;` as the separator
        "a=6&TOKEN={}",  # another case
        "a=6&%74oken={}",  # an escaped name
        "a=6;+token+={}",  # spaces around the name
        "a=6&note={}",  # the secret under another name
        "a=6&{}",  # the secret alone
    ],
)
def test_no_way_of_putting_the_token_in_the_query_keeps_it(
    client: TestClient, carrier: str
) -> None:
    create_source(client, id="tok", signature={"preset": "token", "secrets": [TOKEN]})
    query = carrier.format(TOKEN)
    headers = {**JSON, "X-Webhook-Token": TOKEN}
    answer = client.post(f"/collect/o/tok?{query}", content=b"{", headers=headers)
    assert_error_shape(answer, 400)  # refused after the token was accepted: malformed body
    stored = client.post(f"/collect/o/tok?{query}", content=BODY, headers=headers)
    assert stored.status_code == 200, stored.text
    [kept] = rejections(client)
    shown = client.get(f"/api/rejections/{kept['id']}").json()
    assert shown["query"] == "a=6"
    assert TOKEN not in str(shown)
    [event] = all_events(client, source_id="tok")
    assert event["context"]["query"] == "a=6"
    assert TOKEN not in str(event)


def test_a_get_carrying_the_token_after_a_semicolon_stores_and_keeps_none_of_it(
    client: TestClient,
) -> None:
    create_source(client, id="tok", signature={"preset": "token", "secrets": [TOKEN]})
    guessed = "tok-guessed-secret-0123456789"
    assert_error_shape(client.get(f"/collect/o/tok?a=6;token={guessed}"), 401)
    stored = client.get(f"/collect/o/tok?a=6;token={TOKEN}", headers={"X-Webhook-Token": TOKEN})
    assert stored.status_code == 200, stored.text
    [kept] = rejections(client)
    assert kept["query"] == "a=6"
    [event] = all_events(client, source_id="tok")
    assert event["properties"] == {"a": "6"}
    assert guessed not in str(kept)
    assert TOKEN not in str(event)


def test_a_token_sent_as_the_user_agent_is_stored_nowhere(client: TestClient) -> None:
    rule = {"preset": "token", "secrets": [TOKEN], "header": "User-Agent"}
    create_source(client, id="ua", signature=rule)
    headers = {**JSON, "User-Agent": TOKEN, "Referer": f"https://example.test/?k={TOKEN}"}
    assert client.post("/collect/o/ua", content=BODY, headers=headers).status_code == 200
    assert_error_shape(client.post("/collect/o/ua", content=b"{", headers=headers), 400)
    [event] = all_events(client, source_id="ua")
    assert event["context"]["user_agent"] is None
    assert event["properties"] == {"order": 42}
    assert TOKEN not in str(event)
    [kept] = rejections(client)
    assert TOKEN not in str(client.get(f"/api/rejections/{kept['id']}").json())


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/collect/o/nobody", "unknown_source"), ("/collect/only-one-part", "unknown_route")],
)
def test_a_refusal_with_no_source_known_keeps_only_harmless_headers(
    client: TestClient, path: str, reason: str
) -> None:
    secret = "hook-key-secret-0123456789"
    headers = {
        **JSON,
        "X-Hook-Key": secret,
        "User-Agent": secret,
        "Idempotency-Key": "delivery-1",
        "X-Anything": "harmless, but unknown",
    }
    assert_error_shape(client.post(path, content=BODY, headers=headers), 404)
    [kept] = rejections(client)
    assert kept["reason"] == reason
    shown = client.get(f"/api/rejections/{kept['id']}").json()
    assert secret not in str(shown)
    assert set(shown["headers"]) <= HEADERS_KEPT_WITHOUT_SOURCE
    assert shown["headers"]["content-type"] == "application/json"
    # A wrong route is never replayed, so it needs no delivery id; an unknown source may be
    # created later and its refusal replayed, deduplicated by the id.
    assert shown["headers"].get("idempotency-key") == (
        "delivery-1" if reason == "unknown_source" else None
    )
    assert "x-anything" not in shown["headers"]


def test_the_headers_kept_without_a_source_include_every_delivery_id_header() -> None:
    assert set(DELIVERY_ID_HEADERS) <= HEADERS_KEPT_WITHOUT_SOURCE
