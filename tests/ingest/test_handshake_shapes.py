"""Recognising a handshake is a parsing rule: only exactly the sender's shape is one, so no
real event is ever answered as a handshake and dropped."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.errors import BadRequest
from eventstitch.ingest.handshakes import recognise, without_verify_token
from eventstitch.ingest.schemas import WebhookRequest


def post(body: object) -> WebhookRequest:
    return WebhookRequest("POST", orjson.dumps(body), "", [], None, "x", "hooks")


def get(query: str) -> WebhookRequest:
    return WebhookRequest("GET", b"", query, [], None, "x", "hooks")


SLACK = {"token": "t", "challenge": "c", "type": "url_verification"}
ZOOM = {"event": "endpoint.url_validation", "payload": {"plainToken": "p"}, "event_ts": 1}
values = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))
extra_keys = st.text(min_size=1, max_size=12).filter(
    lambda k: k not in {"token", "challenge", "type", "event", "payload", "event_ts"}
)


def test_the_exact_shapes_are_recognised() -> None:
    assert recognise(post(SLACK)) is not None
    assert recognise(post(ZOOM)) is not None
    meta = "hub.mode=subscribe&hub.challenge=1&hub.verify_token=v"
    assert recognise(get(meta)) is not None
    assert recognise(get("")) is not None


@settings(max_examples=200, deadline=None)
@given(
    shape=st.sampled_from([SLACK, ZOOM]),
    key=extra_keys,
    value=values,
)
def test_a_handshake_body_with_any_other_key_is_an_event(
    shape: dict[str, object], key: str, value: object
) -> None:
    assert recognise(post({**shape, key: value})) is None


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(["type", "event", "payload"]), value=values)
def test_a_handshake_body_with_another_fixed_value_is_an_event(key: str, value: object) -> None:
    for shape in (SLACK, ZOOM):
        if key in shape and shape[key] != value:
            assert recognise(post({**shape, key: value})) is None


@settings(max_examples=200, deadline=None)
@given(key=st.from_regex(r"[a-z_]{1,10}", fullmatch=True), value=st.from_regex(r"[a-z0-9]{0,8}"))
def test_a_meta_check_with_any_other_parameter_is_an_event(key: str, value: str) -> None:
    query = f"hub.mode=subscribe&hub.challenge=1&hub.verify_token=v&{key}={value}"
    assert recognise(get(query)) is None


def test_the_verify_token_is_removed_however_its_name_is_escaped() -> None:
    query = "hub.mode=subscribe&hub%2Everify_token=s&hub.challenge=1&hub.verify_token=s"
    assert without_verify_token(query) == "hub.mode=subscribe&hub.challenge=1"


def test_a_challenge_is_answered_up_to_512_characters_and_refused_past() -> None:
    found = recognise(post({**SLACK, "challenge": "c" * 512}))
    assert found is not None
    assert found[1] == {"challenge": "c" * 512}
    with pytest.raises(BadRequest) as refused:
        recognise(post({**SLACK, "challenge": "c" * 513}))
    assert refused.value.reason == "bad_handshake"
    assert refused.value.errors == [{"field": "challenge", "limit": 512}]
