"""Senders' URL checks over real HTTP, on both backends: Slack's `url_verification`, Zoom's
`endpoint.url_validation`, Meta's `hub.challenge` GET and Mailchimp's bare GET are answered as
each sender expects, stored as nothing and counted; a failed check is refused (401/403), kept
without the verify token, and never replayed; a body merely like a handshake is an event."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterator

import httpx2 as httpx
import orjson
import pytest

from eventstitch.storage import BACKENDS
from tests.conftest import LiveServer, all_events, assert_error_shape, create_source
from tests.ingest.live import server_on
from tests.pg import backend_params

pytestmark = pytest.mark.e2e  # every test here starts a real server process

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ZOOM_SECRET = "zoom-secret-token-0123456789"
META_TOKEN = "meta-verify-token-0123456789"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", params=backend_params(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with server_on(request.param, tmp_path_factory) as live:
        with live.client() as http:
            create_source(
                http, id="slack", signature={"preset": "slack", "secrets": [SLACK_SECRET]}
            )
            create_source(http, id="zoom", signature={"preset": "zoom", "secrets": [ZOOM_SECRET]})
            create_source(
                http,
                id="meta",
                signature={
                    "preset": "hmac",
                    "header": "X-Hub-Signature-256",
                    "prefix": "sha256=",
                    "secrets": [META_TOKEN],
                },
            )
            create_source(http, id="plain")
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def v0_signed(body: bytes, secret: str, prefix: str, stamp: int | None = None) -> dict[str, str]:
    """Slack's and Zoom's signature: `v0=` hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(secret.encode(), b"v0:%d:" % stamp + body, hashlib.sha256).hexdigest()
    return {**JSON, f"{prefix}-Signature": f"v0={digest}", prefix_stamp(prefix): str(stamp)}


def prefix_stamp(prefix: str) -> str:
    return "X-Slack-Request-Timestamp" if prefix == "X-Slack" else "X-Zm-Request-Timestamp"


def answered(http: httpx.Client, sender: str) -> float:
    text = http.get("/metrics").text
    pattern = rf'^eventstitch_handshakes_answered_total{{sender="{sender}"}} (\S+)$'
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


SLACK_CHECK = orjson.dumps(
    {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
)


def test_slack_url_verification_is_answered_with_its_challenge_and_stores_nothing(
    http: httpx.Client,
) -> None:
    before, count = len(all_events(http)), answered(http, "slack")
    for source, headers in (
        ("slack", v0_signed(SLACK_CHECK, SLACK_SECRET, "X-Slack")),
        ("plain", JSON),
    ):
        answer = http.post(f"/collect/slack/{source}", content=SLACK_CHECK, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {"challenge": orjson.loads(SLACK_CHECK)["challenge"]}
    assert len(all_events(http)) == before
    assert answered(http, "slack") == count + 2


def test_a_slack_check_with_a_bad_signature_is_401_kept_and_never_replayed(
    http: httpx.Client,
) -> None:
    before = len(all_events(http))
    stale = v0_signed(SLACK_CHECK, SLACK_SECRET, "X-Slack", stamp=int(time.time()) - 3600)
    wrong = v0_signed(SLACK_CHECK, "another-secret-0123456789", "X-Slack")
    stale_answer = http.post("/collect/slack/slack", content=SLACK_CHECK, headers=stale)
    assert assert_error_shape(stale_answer, 401)["errors"][0]["problem"] == "outside_tolerance"
    assert_error_shape(http.post("/collect/slack/slack", content=SLACK_CHECK, headers=wrong), 401)
    assert len(all_events(http)) == before
    kept = http.get("/api/rejections", params={"source_id": "slack", "limit": 1}).json()
    [record] = kept["rejections"]
    assert record["reason"] == "bad_signature"
    assert "x-slack-signature" not in record["headers"]
    replay = http.post(f"/api/rejections/{record['id']}/replay")
    assert "URL check" in assert_error_shape(replay, 409)["error"]
    assert len(all_events(http)) == before


def test_a_signed_slack_event_is_stored_without_its_verification_token(
    http: httpx.Client,
) -> None:
    body = orjson.dumps(
        {
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "type": "event_callback",
            "team_id": "T1",
            "event": {"type": "app_mention", "user": "U1", "text": "hi"},
        }
    )
    answer = http.post(
        "/collect/slack/slack", content=body, headers=v0_signed(body, SLACK_SECRET, "X-Slack")
    )
    assert answer.status_code == 200, answer.text
    stored = http.get(f"/api/events/{answer.json()['id']}").json()
    assert "token" not in stored["properties"]
    assert stored["properties"]["event"]["type"] == "app_mention"
    assert "Jhj5dZrVaK7ZwHHjRyZWjbDl" not in orjson.dumps(stored).decode()


def test_a_body_merely_like_a_handshake_is_an_event(http: httpx.Client) -> None:
    before = len(all_events(http))
    for body in (
        {"type": "url_verification", "challenge": "c", "token": "t", "team": "T1"},
        {"type": "url_verification"},
        {"event": "endpoint.url_validation", "payload": {"plainToken": "p", "x": 1}},
    ):
        answer = http.post("/collect/check/plain", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ok"] is True
    assert len(all_events(http)) == before + 3


def test_zoom_url_validation_answers_the_hmac_of_the_plain_token(http: httpx.Client) -> None:
    before, count = len(all_events(http)), answered(http, "zoom")
    body = orjson.dumps(
        {
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": 1654503849680,
            "event": "endpoint.url_validation",
        }
    )
    answer = http.post(
        "/collect/meeting/zoom", content=body, headers=v0_signed(body, ZOOM_SECRET, "X-Zm")
    )
    assert answer.status_code == 200, answer.text
    expected = hmac.new(ZOOM_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256)
    assert answer.json() == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": expected.hexdigest(),
    }
    # Without a secret there is nothing to answer with: 403, stored as nothing.
    refused = http.post("/collect/meeting/plain", content=body, headers=JSON)
    assert assert_error_shape(refused, 403)["errors"] == [{"field": "signature", "sender": "zoom"}]
    assert len(all_events(http)) == before
    assert answered(http, "zoom") == count + 1


def meta_check(token: str) -> dict[str, str]:
    return {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": token}


def test_meta_challenge_is_echoed_as_text_when_the_verify_token_matches(
    http: httpx.Client,
) -> None:
    before, count = len(all_events(http)), answered(http, "meta")
    answer = http.get("/collect/messages/meta", params=meta_check(META_TOKEN))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "1158201444"
    assert len(all_events(http)) == before
    assert answered(http, "meta") == count + 1


def test_a_wrong_verify_token_is_403_and_kept_without_it(http: httpx.Client) -> None:
    before = len(all_events(http))
    wrong = "meta-verify-token-0123456780"
    refused = http.get("/collect/messages/meta", params=meta_check(wrong))
    assert assert_error_shape(refused, 403)["errors"] == [
        {"field": "hub.verify_token", "problem": "mismatch"}
    ]
    assert wrong not in refused.text
    unsigned = http.get("/collect/messages/plain", params=meta_check(META_TOKEN))
    assert_error_shape(unsigned, 403)
    assert len(all_events(http)) == before
    listing = http.get("/api/rejections", params={"reason": "bad_verify_token"}).json()
    [record] = listing["rejections"]
    assert "verify_token" not in record["query"]
    assert "hub.challenge=1158201444" in record["query"]
    replay = http.post(f"/api/rejections/{record['id']}/replay")
    assert_error_shape(replay, 409)
    assert len(all_events(http)) == before


def test_mailchimp_bare_get_is_200_and_stores_nothing_but_a_get_with_a_query_is_an_event(
    http: httpx.Client,
) -> None:
    before, count = len(all_events(http)), answered(http, "mailchimp")
    answer = http.get("/collect/list/plain")
    assert answer.status_code == 200, answer.text
    assert len(all_events(http)) == before
    assert answered(http, "mailchimp") == count + 1
    assert http.get("/collect/list/plain", params={"a": "1"}).json()["ok"] is True
    assert len(all_events(http)) == before + 1
