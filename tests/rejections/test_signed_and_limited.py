"""Refusals by signature and by rate limit in the quarantine: kept without the secrets they
carried, and replayable by an operator (a replay passes signature and rate limit by: the
operator holds the API token, and the stored request never carries the signature)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from starlette.testclient import TestClient

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
    [kept] = rejections(client)  # no rule named the header then: it is kept as sent
    create_source(client, id="later", signature=hook_key(secret))
    replay = client.post(f"/api/rejections/{kept['id']}/replay")
    assert replay.status_code == 200, replay.text
    [event] = all_events(client, source_id="later")
    assert "x-hook-key" not in event["context"]["headers"]
    assert secret not in str(event)
