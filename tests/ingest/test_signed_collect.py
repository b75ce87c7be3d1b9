"""Signed webhook sources over ASGI: a true signature is stored, every refusal is a 401 in the
one error shape with its own metrics reason and stores nothing, and secrets never come back
out (API answers, stored headers and query, error messages)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import all_events, assert_error_shape, create_source
from tests.ingest.test_collect_refusals import rejected

GITHUB_SECRET = "It's a Secret to Everybody"
OLD_SECRET = "the-old-secret-0123456789"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "token-secret-0123456789"
BODY = b'{"order": 42}'
JSON = {"content-type": "application/json"}


def github(body: bytes, secret: str = GITHUB_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {**JSON, "X-Hub-Signature-256": f"sha256={digest}"}


def stripe(body: bytes, secret: str, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {**JSON, "Stripe-Signature": f"t={stamp},v1={digest}"}


def shopify(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {**JSON, "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}


def standard(body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    signed = f"msg_1.{stamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        **JSON,
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": f"v1,{digest}",
    }


def signed_source(client: TestClient, source_id: str, **signature: Any) -> dict[str, Any]:
    return create_source(client, id=source_id, signature=signature)


def test_a_true_github_signature_is_stored_and_its_header_is_not(client: TestClient) -> None:
    signed_source(client, "gh", preset="github", secrets=[GITHUB_SECRET])
    answer = client.post("/collect/push/gh", content=BODY, headers=github(BODY))
    assert answer.status_code == 200, answer.text
    [event] = all_events(client, source_id="gh")
    assert event["properties"] == {"order": 42}
    stored = repr(event)
    assert "x-hub-signature-256" not in stored
    assert GITHUB_SECRET not in stored


@pytest.mark.parametrize(
    ("headers", "body", "reason", "says"),
    [
        (JSON, BODY, "missing_signature", "no x-hub-signature-256 header"),
        ({**JSON, "X-Hub-Signature-256": "md5=abc"}, BODY, "malformed_signature", "sha256="),
        (github(BODY), BODY + b" ", "bad_signature", "does not match"),
        (github(BODY, OLD_SECRET), BODY, "bad_signature", "does not match"),
    ],
)
def test_every_github_refusal_is_401_counted_by_reason_and_stores_nothing(
    client: TestClient, headers: dict[str, str], body: bytes, reason: str, says: str
) -> None:
    signed_source(client, "gh", preset="github", secrets=[GITHUB_SECRET])
    before = rejected(client, reason)
    answer = client.post("/collect/push/gh", content=body, headers=headers)
    error = assert_error_shape(answer, 401)
    assert "source 'gh' requires a signature" in error["error"]
    assert says in error["error"]
    assert error["errors"][0]["field"] == "x-hub-signature-256"
    assert rejected(client, reason) == before + 1
    assert all_events(client, source_id="gh") == []


def test_a_stripe_timestamp_outside_the_tolerance_is_refused(client: TestClient) -> None:
    secret = "whsec_stripe_signing_secret_01"
    signed_source(client, "pay", preset="stripe", secrets=[secret], tolerance_seconds=60)
    assert client.post("/collect/charge/pay", content=BODY, headers=stripe(BODY, secret)).is_success
    for stamp in (int(time.time()) - 3600, int(time.time()) + 3600):
        answer = client.post(
            "/collect/charge/pay", content=BODY, headers=stripe(BODY, secret, stamp)
        )
        error = assert_error_shape(answer, 401)
        assert "more than 60 s from now" in error["error"]
        assert error["errors"] == [{"field": "stripe-signature", "problem": "outside_tolerance"}]
    assert len(all_events(client, source_id="pay")) == 1


def test_shopify_and_standard_webhooks_over_http(client: TestClient) -> None:
    shop_secret = "shopify-app-secret-0123456789"
    signed_source(client, "shop", preset="shopify", secrets=[shop_secret])
    signed_source(client, "std", preset="standard_webhooks", secrets=[STANDARD_SECRET])
    assert client.post(
        "/collect/o/shop", content=BODY, headers=shopify(BODY, shop_secret)
    ).is_success
    assert client.post("/collect/o/std", content=BODY, headers=standard(BODY)).is_success
    assert_error_shape(client.post("/collect/o/shop", content=BODY, headers=JSON), 401)
    stale = standard(BODY, int(time.time()) - 301)
    assert_error_shape(client.post("/collect/o/std", content=BODY, headers=stale), 401)
    [std] = all_events(client, source_id="std")
    assert "webhook-signature" not in std["context"]["headers"]
    assert std["context"]["headers"]["webhook-id"] == "msg_1"  # not a secret; names the delivery
    assert len(all_events(client, source_id="shop")) == 1


@pytest.mark.parametrize(
    ("preset", "secret", "sign"),
    [
        ("github", GITHUB_SECRET, lambda: github(b"")),
        ("shopify", GITHUB_SECRET, lambda: shopify(b"", GITHUB_SECRET)),
        ("stripe", GITHUB_SECRET, lambda: stripe(b"", GITHUB_SECRET)),
        ("standard_webhooks", STANDARD_SECRET, lambda: standard(b"")),
    ],
    ids=["github", "shopify", "stripe", "standard_webhooks"],
)
def test_a_get_to_a_body_signed_source_is_405_even_with_the_empty_body_signature(
    client: TestClient, preset: str, secret: str, sign: Any
) -> None:
    signed_source(client, "sig", preset=preset, secrets=[secret])
    before = rejected(client, "unsigned_method")
    headers = sign()
    del headers["content-type"]
    # The signature of an empty body is valid, but covers nothing the query carries.
    answer = client.get("/collect/anything/sig?plan=free&admin=true", headers=headers)
    error = assert_error_shape(answer, 405)
    assert answer.headers["allow"] == "POST"
    assert error["errors"] == [{"field": "method", "value": "GET", "allowed": ["POST"]}]
    assert "source 'sig'" in error["error"]
    assert rejected(client, "unsigned_method") == before + 1
    assert_error_shape(client.get("/collect/anything/sig?admin=true"), 405)  # unsigned too
    assert all_events(client, source_id="sig") == []


def test_a_token_source_still_takes_a_get_and_an_unsigned_source_any_get(
    client: TestClient,
) -> None:
    signed_source(client, "form", preset="token", secrets=[TOKEN])
    create_source(client, id="open")
    assert client.get("/collect/ping/form?a=1", headers={"X-Webhook-Token": TOKEN}).is_success
    assert client.get("/collect/ping/open?a=1").is_success
    [event] = all_events(client, source_id="form")
    assert event["properties"] == {"a": "1"}


def test_a_token_in_the_header_or_query_is_accepted_and_never_stored(client: TestClient) -> None:
    signed_source(client, "form", preset="token", secrets=[TOKEN])
    assert client.post("/collect/lead/form", json={"a": 1}, headers={"X-Webhook-Token": TOKEN})
    assert client.get(f"/collect/lead/form?b=2&token={TOKEN}").is_success
    error = assert_error_shape(client.get("/collect/lead/form?b=2&token=guess"), 401)
    assert TOKEN not in error["error"]
    assert_error_shape(client.get("/collect/lead/form?b=2"), 401)
    events = all_events(client, source_id="form")
    assert sorted(e["type"] for e in events) == ["lead", "lead"]
    by_method = {e["context"]["method"]: e for e in events}
    assert by_method["GET"]["properties"] == {"b": "2"}
    assert by_method["GET"]["context"]["query"] == "b=2"
    assert TOKEN not in repr(events)


def test_a_generic_hmac_header_of_any_name_is_not_stored(client: TestClient) -> None:
    secret = "generic-secret-0123456789"
    signed_source(
        client, "gen", preset="hmac", secrets=[secret], header="X-Body-Check",
        algorithm="sha1", encoding="base64", prefix="sha1=",
    )  # fmt: skip
    digest = base64.b64encode(hmac.new(secret.encode(), BODY, hashlib.sha1).digest()).decode()
    headers = {**JSON, "X-Body-Check": f"sha1={digest}"}
    assert client.post("/collect/o/gen", content=BODY, headers=headers).is_success
    [event] = all_events(client, source_id="gen")
    assert "x-body-check" not in event["context"]["headers"]


def test_rotation_takes_either_secret_then_only_the_new_one(client: TestClient) -> None:
    signed_source(client, "gh", preset="github", secrets=[OLD_SECRET])
    patched = client.patch(
        "/api/sources/gh",
        json={"signature": {"preset": "github", "secrets": [GITHUB_SECRET, OLD_SECRET]}},
    )
    assert patched.json()["signature"]["secret_count"] == 2
    for secret in (GITHUB_SECRET, OLD_SECRET):
        assert client.post("/collect/o/gh", content=BODY, headers=github(BODY, secret)).is_success
    client.patch(
        "/api/sources/gh", json={"signature": {"preset": "github", "secrets": [GITHUB_SECRET]}}
    )
    assert_error_shape(
        client.post("/collect/o/gh", content=BODY, headers=github(BODY, OLD_SECRET)), 401
    )
    assert client.post("/collect/o/gh", content=BODY, headers=github(BODY)).is_success
    assert len(all_events(client, source_id="gh")) == 3


def test_the_api_shows_hints_never_secrets_and_null_removes_the_rule(client: TestClient) -> None:
    created = signed_source(client, "gh", preset="github", secrets=[GITHUB_SECRET, OLD_SECRET])
    shown = client.get("/api/sources/gh").json()
    listed = client.get("/api/sources").json()
    for secret in (GITHUB_SECRET, OLD_SECRET):
        for answer in (created, shown, listed):
            assert secret not in repr(answer)
    assert shown["signature"] == {
        "preset": "github",
        "header": "x-hub-signature-256",
        "algorithm": None,
        "encoding": None,
        "prefix": None,
        "tolerance_seconds": None,
        "url": None,
        "secret_count": 2,
        "secret_hints": ["...body", "...6789"],
    }
    renamed = client.patch("/api/sources/gh", json={"name": "Renamed"}).json()
    assert renamed["signature"] == shown["signature"]  # other changes keep the rule
    removed = client.patch("/api/sources/gh", json={"signature": None})
    assert removed.json()["signature"] is None
    assert client.post("/collect/o/gh", json={"unsigned": True}).is_success


@pytest.mark.parametrize(
    ("signature", "says"),
    [
        ({"preset": "github", "secrets": []}, "secrets"),
        ({"preset": "github", "secrets": ["a" * 16] * 3}, "secrets"),
        ({"preset": "github", "secrets": ["short"]}, "secrets"),
        ({"preset": "github", "secrets": [" padded-secret-01234 "]}, "secrets"),
        ({"preset": "md5", "secrets": ["a" * 16]}, "preset"),
        ({"preset": "hmac", "secrets": ["a" * 16]}, "needs the header"),
        ({"preset": "github", "secrets": ["a" * 16], "header": "X-Other"}, "not an option"),
        ({"preset": "shopify", "secrets": ["a" * 16], "tolerance_seconds": 5}, "not an option"),
        ({"preset": "standard_webhooks", "secrets": ["whsec_not base64!!!"]}, "base64"),
        ({"preset": "stripe", "secrets": ["a" * 16], "tolerance_seconds": 0}, "tolerance"),
        # Headers Eventstitch reads for itself: a token there would be a delivery key, be
        # echoed by a 415, or be kept by a refusal that names no source.
        ({"preset": "token", "secrets": ["a" * 16], "header": "Idempotency-Key"}, "reads it"),
        ({"preset": "token", "secrets": ["a" * 16], "header": "x-event-id"}, "reads it"),
        ({"preset": "token", "secrets": ["a" * 16], "header": "Content-Type"}, "reads it"),
        ({"preset": "hmac", "secrets": ["a" * 16], "header": "Origin"}, "reads it"),
    ],
)
def test_a_bad_signature_rule_is_422_and_creates_nothing(
    client: TestClient, signature: dict[str, Any], says: str
) -> None:
    answer = client.post("/api/sources", json={"id": "gh", "name": "x", "signature": signature})
    error = assert_error_shape(answer, 422)
    assert says in repr(error)
    for secret in signature["secrets"]:
        assert len(secret) < 16 or secret not in repr(error)
    assert client.get("/api/sources/gh").status_code == 404


def test_a_tracker_source_cannot_require_a_signature(client: TestClient) -> None:
    rule = {"preset": "github", "secrets": [GITHUB_SECRET]}
    answer = client.post("/api/sources", json={"name": "w", "kind": "tracker", "signature": rule})
    assert "webhook sources only" in assert_error_shape(answer, 422)["error"]
    signed_source(client, "gh", preset="github", secrets=[GITHUB_SECRET])
    assert_error_shape(client.patch("/api/sources/gh", json={"kind": "tracker"}), 422)
