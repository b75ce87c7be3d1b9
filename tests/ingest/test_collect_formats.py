"""What the webhook bridge accepts, and what it keeps of each request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import create_source


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks")
    return client


def stored(client: TestClient, answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["profile_less"] is True
    event: dict[str, Any] = client.get(f"/api/events/{body['id']}").json()
    return event


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"email": "a@a.com", "n": 1}'),
        ("application/json; charset=utf-8", b'{"email": "a@a.com", "n": 1}'),
        ("application/json; charset=latin-1", '{"email": "a@a.com", "n": 1}'.encode("latin-1")),
        ("application/json; charset=utf-16", '{"email": "a@a.com", "n": 1}'.encode("utf-16")),
        ("application/vnd.api+json", b'{"email": "a@a.com", "n": 1}'),
        ("text/plain", b'{"email": "a@a.com", "n": 1}'),
        (None, b'{"email": "a@a.com", "n": 1}'),
        ("application/json", b'\xef\xbb\xbf{"email": "a@a.com", "n": 1}'),
    ],
)
def test_collect_reads_json_in_any_of_its_dresses(
    hooks: TestClient, content_type: str | None, body: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    event = stored(hooks, hooks.post("/collect/order/hooks", content=body, headers=headers))
    assert event["properties"] == {"email": "a@a.com", "n": 1}


def test_collect_keeps_unicode_and_nested_values_exactly(hooks: TestClient) -> None:
    body = {"name": "Zoë 🐢", "nested": {"list": [1, 2.5, None, True], "deep": {"x": "y"}}}
    assert stored(hooks, hooks.post("/collect/order/hooks", json=body))["properties"] == body


def test_form_bodies_turn_repeated_keys_into_lists(hooks: TestClient) -> None:
    answer = hooks.post(
        "/collect/signup/hooks",
        content=b"user=Jane&tag=a&tag=b&empty=",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    event = stored(hooks, answer)
    assert event["properties"] == {"user": "Jane", "tag": ["a", "b"], "empty": ""}
    assert event["context"]["body_kind"] == "form"


def test_get_reads_the_query_string(hooks: TestClient) -> None:
    event = stored(hooks, hooks.get("/collect/ping/hooks?status=ok&id=1&id=2"))
    assert event["properties"] == {"status": "ok", "id": ["1", "2"]}
    assert event["context"]["query"] == "status=ok&id=1&id=2"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[1, 2, 3]", "array"),
        (b'"hello"', "string"),
        (b"42", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
def test_a_json_value_that_is_not_an_object_is_kept_whole(
    hooks: TestClient, body: bytes, kind: str
) -> None:
    answer = hooks.post(
        "/collect/raw/hooks", content=body, headers={"content-type": "application/json"}
    )
    event = stored(hooks, answer)
    assert event["properties"] == {"_body": json.loads(body)}
    assert event["context"]["body_kind"] == kind


def test_an_empty_body_is_an_empty_event(hooks: TestClient) -> None:
    event = stored(hooks, hooks.post("/collect/ping/hooks", content=b""))
    assert event["properties"] == {}


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Page View", "page-view"),
        ("page%20view", "page-view"),
        ("ORDER.Paid", "order.paid"),
        ("a:b_c-d", "a:b_c-d"),
    ],
)
def test_event_types_are_normalised(hooks: TestClient, raw: str, normalised: str) -> None:
    answer = hooks.post(f"/collect/{raw}/hooks", json={})
    assert answer.json()["type"] == normalised
    assert stored(hooks, answer)["type"] == normalised


def test_the_stored_context_keeps_the_request_but_not_its_secrets(hooks: TestClient) -> None:
    answer = hooks.post(
        "/collect/order/hooks?via=test",
        json={"a": 1},
        headers={
            "User-Agent": "Stripe/1.0",
            "Authorization": "Bearer sk_live_123",
            "Cookie": "session=abc",
            "X-Hub-Signature-256": "sha256=deadbeef",
            "Stripe-Signature": "t=1,v1=abc",
            "X-Api-Key": "k",
            "X-Webhook-Secret": "s",
            "X-Request-Id": "req-1",
        },
    )
    context = stored(hooks, answer)["context"]
    assert context["user_agent"] == "Stripe/1.0"
    assert context["content_type"] == "application/json"
    assert context["client"] == "testclient"
    assert context["query"] == "via=test"
    headers = context["headers"]
    assert headers["x-request-id"] == "req-1"
    for secret in (
        "authorization",
        "cookie",
        "x-hub-signature-256",
        "stripe-signature",
        "x-api-key",
        "x-webhook-secret",
    ):
        assert secret not in headers
    assert "sk_live_123" not in str(context)
