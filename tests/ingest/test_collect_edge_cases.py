"""The webhook bridge at the edges: odd charsets, odd paths, limits exactly met, and any JSON
object stored and read back unchanged through the real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import ConfigError
from tests.conftest import API_TOKEN, all_events, assert_error_shape, create_source, make_config


def event_total(client: TestClient) -> int:
    """Every stored event, whatever its source (creating a source stores a system event)."""
    return len(all_events(client))


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks")
    return client


def nested(depth: int) -> bytes:
    return b"[" * (depth - 1) + b'{"leaf": 1}' + b"]" * (depth - 1)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json; charset=undefined", b'{"a": 1}'),
        ("application/json; charset=punycode", b'{"a": 1}'),
        ("application/json; charset=idna", b"xn--"),
        ("application/json; charset=rot13", b'{"a": 1}'),
        ("application/json; charset=base64", b"eyJhIjogMX0="),
        ("application/x-www-form-urlencoded; charset=undefined", b"a=1"),
        ("application/x-www-form-urlencoded; charset=idna", b"a=%FF"),
        ("text/plain; charset=utf-16", b'{"a": 1}'),
        ("application/json; charset=ascii", '{"a": "é"}'.encode()),
    ],
)
def test_collect_refuses_a_body_its_charset_cannot_read_and_stores_nothing(
    hooks: TestClient, content_type: str, body: bytes
) -> None:
    before = event_total(hooks)
    answer = hooks.post(
        "/collect/order/hooks", content=body, headers={"content-type": content_type}
    )
    assert answer.status_code in (400, 415), answer.text
    assert_error_shape(answer, answer.status_code)
    assert event_total(hooks) == before


def test_a_latin_1_form_keeps_its_accented_letters_raw_or_percent_encoded(
    hooks: TestClient,
) -> None:
    answer = hooks.post(
        "/collect/signup/hooks",
        content=b"name=Zo%EB&city=M\xfcnchen",
        headers={"content-type": "application/x-www-form-urlencoded; charset=ISO-8859-1"},
    )
    assert answer.status_code == 200, answer.text
    event = hooks.get(f"/api/events/{answer.json()['id']}").json()
    assert event["properties"] == {"name": "Zoë", "city": "München"}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("%20%20", 400),  # nothing left once trimmed
        ("caf%C3%A9", 400),  # outside the documented set
        ("-leading-dash", 400),
        ("a%00b", 400),
    ],
)
def test_collect_refuses_an_event_type_outside_the_documented_set_and_stores_nothing(
    hooks: TestClient, raw: str, status: int
) -> None:
    before = event_total(hooks)
    assert_error_shape(hooks.post(f"/collect/{raw}/hooks", json={"a": 1}), status)
    assert event_total(hooks) == before


def test_the_longest_allowed_event_type_is_stored_and_one_more_character_is_refused(
    hooks: TestClient,
) -> None:
    longest = "E" * 128
    before = event_total(hooks)
    answer = hooks.post(f"/collect/{longest}/hooks", json={})
    assert answer.status_code == 200, answer.text
    assert hooks.get(f"/api/events/{answer.json()['id']}").json()["type"] == "e" * 128
    error = assert_error_shape(hooks.post(f"/collect/{longest}E/hooks", json={}), 400)
    assert error["errors"][0]["field"] == "event_type"
    assert event_total(hooks) == before + 1


def test_a_body_nested_exactly_to_the_limit_is_stored_and_one_deeper_is_refused(
    hooks: TestClient,
) -> None:
    before = event_total(hooks)
    at_limit = hooks.post(
        "/collect/deep/hooks", content=nested(32), headers={"content-type": "application/json"}
    )
    assert at_limit.status_code == 200, at_limit.text
    stored = hooks.get(f"/api/events/{at_limit.json()['id']}").json()
    assert stored["properties"] == {"_body": orjson.loads(nested(32))}
    too_deep = hooks.post(
        "/collect/deep/hooks", content=nested(33), headers={"content-type": "application/json"}
    )
    error = assert_error_shape(too_deep, 400)
    assert error["errors"] == [{"field": "body", "limit": 32}]
    assert event_total(hooks) == before + 1


def test_the_nesting_limit_cannot_be_raised_past_what_can_be_stored(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EVENTSTITCH_MAX_NESTING_DEPTH"):
        make_config(tmp_path, max_nesting_depth=1000)


def test_a_body_at_the_highest_nesting_limit_is_stored(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path, max_nesting_depth=200))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")
        before = event_total(client)
        answer = client.post(
            "/collect/deep/hooks", content=nested(200), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 200, answer.text
        assert event_total(client) == before + 1


def test_the_widest_integers_that_fit_in_signed_64_bits_are_stored_exactly(
    hooks: TestClient,
) -> None:
    body = b'{"max": 9223372036854775807, "min": -9223372036854775808, "big": 1e308}'
    answer = hooks.post("/collect/n/hooks", content=body, headers={"content-type": "text/plain"})
    assert answer.status_code == 200, answer.text
    stored = hooks.get(f"/api/events/{answer.json()['id']}").json()
    assert stored["properties"] == {"max": 2**63 - 1, "min": -(2**63), "big": 1e308}


def test_a_get_without_a_query_string_is_a_url_check_and_stores_nothing(
    hooks: TestClient,
) -> None:
    before = len(all_events(hooks))
    answer = hooks.get("/collect/ping/hooks")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "handshake": "mailchimp"}
    assert len(all_events(hooks)) == before


def test_a_post_keeps_its_query_string_in_the_context_not_in_the_properties(
    hooks: TestClient,
) -> None:
    answer = hooks.post("/collect/order/hooks?token_id=7&via=zapier", json={"a": 1})
    stored = hooks.get(f"/api/events/{answer.json()['id']}").json()
    assert stored["properties"] == {"a": 1}
    assert stored["context"]["query"] == "token_id=7&via=zapier"
    assert stored["context"]["body_kind"] == "object"


def test_headers_named_like_cookies_or_credentials_are_not_stored(hooks: TestClient) -> None:
    answer = hooks.post(
        "/collect/order/hooks",
        json={},
        headers={
            "Cookie2": "$Version=1",
            "Proxy-Authorization": "Basic eA==",
            "X-Auth-Token": "t",
            "X-Shopify-Hmac-Sha256": "h",
            "X-Gitlab-Token": "g",
            "X-Session-Id": "s",
            "X-GitHub-Event": "push",
        },
    )
    headers = hooks.get(f"/api/events/{answer.json()['id']}").json()["context"]["headers"]
    assert headers["x-github-event"] == "push"
    for name in (
        "cookie2",
        "proxy-authorization",
        "x-auth-token",
        "x-shopify-hmac-sha256",
        "x-gitlab-token",
        "x-session-id",
    ):
        assert name not in headers


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=6), children, max_size=3)
        ),
        max_leaves=12,
    ),
    max_size=5,
)


def test_any_json_object_is_read_back_from_the_store_unchanged(tmp_path: Path) -> None:
    with TestClient(EventstitchApp(make_config(tmp_path))) as client:
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        create_source(client, id="hooks")

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(json_objects)
        def round_trip(value: dict[str, Any]) -> None:
            answer = client.post(
                "/collect/any/hooks",
                content=orjson.dumps(value),
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 200, answer.text
            stored = client.get(f"/api/events/{answer.json()['id']}").json()
            assert stored["properties"] == value

        round_trip()
