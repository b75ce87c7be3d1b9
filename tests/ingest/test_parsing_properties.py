"""Property tests for the parsing rules of the webhook bridge."""

from __future__ import annotations

import encodings.aliases
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.errors import BadRequest, EventstitchError
from eventstitch.ingest.parsing import (
    NON_OBJECT_KEY,
    nesting_depth,
    normalise_event_type,
    parse_body,
    parse_form,
    safe_headers,
)

# The set documented in docs/api.md, written out here so that the test checks the docs' promise.
DOCUMENTED_EVENT_TYPE = re.compile(r"(?=.{1,128}\Z)[a-z0-9][a-z0-9._:-]*(/[a-z0-9][a-z0-9._:-]*)*")
"""docs/api.md: segments of `[a-z0-9._:-]` joined by '/', each starting with a letter or a
digit, 128 characters at most in all."""

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)

SERIALISERS: dict[str, Callable[[Any], bytes]] = {
    "json": lambda value: json.dumps(value).encode(),
    "json-unicode": lambda value: json.dumps(value, ensure_ascii=False).encode(),
    "orjson": orjson.dumps,
}


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def reference_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


@pytest.mark.parametrize("serialiser", SERIALISERS)
@given(value=json_objects)
def test_any_json_object_becomes_the_properties_unchanged(
    serialiser: str, value: dict[str, Any]
) -> None:
    properties, kind = parse_body(SERIALISERS[serialiser](value), "application/json", max_depth=64)
    assert properties == value
    assert kind == "object"


@given(
    json_objects,
    st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "ascii"]),
)
def test_any_json_object_in_a_declared_charset_becomes_the_same_properties(
    value: dict[str, Any], charset: str
) -> None:
    try:
        body = json.dumps(value, ensure_ascii=False).encode(charset)
    except UnicodeEncodeError:  # the charset cannot hold every character: send them escaped
        body = json.dumps(value).encode(charset)
    content_type = f"application/json; charset={charset}"
    properties, kind = parse_body(body, content_type, max_depth=64)
    assert properties == value
    assert kind == "object"


@pytest.mark.parametrize("serialiser", SERIALISERS)
@given(value=json_values.filter(lambda v: not isinstance(v, dict)))
def test_a_value_that_is_not_an_object_is_kept_whole_and_its_kind_named(
    serialiser: str, value: Any
) -> None:
    properties, kind = parse_body(SERIALISERS[serialiser](value), "text/plain", max_depth=64)
    assert properties == {NON_OBJECT_KEY: value}
    assert kind == reference_kind(value)


@given(json_values)
def test_nesting_depth_agrees_with_the_plain_recursive_definition(value: Any) -> None:
    assert nesting_depth(value) == reference_depth(value)


@given(json_values, st.integers(0, 6))
def test_nesting_depth_with_a_stop_still_tells_whether_the_limit_is_passed(
    value: Any, limit: int
) -> None:
    assert (nesting_depth(value, stop_after=limit) > limit) == (reference_depth(value) > limit)


near_event_types = st.text(
    alphabet=st.sampled_from("abzAZ09._:-/$ \t\né%\u017f\u212a"), max_size=12
) | st.builds(lambda n: "a" * n, st.integers(120, 135))


@given(st.text(max_size=140) | near_event_types)
def test_event_type_normalisation_is_the_documented_rule_and_idempotent(raw: str) -> None:
    expected = re.sub(r"\s+", "-", raw.strip().lower())
    try:
        value = normalise_event_type(raw)
    except BadRequest as error:  # anything other than a 400 fails the test
        refusal = error
    else:
        assert value == expected
        assert DOCUMENTED_EVENT_TYPE.fullmatch(value)
        assert normalise_event_type(value) == value
        return
    assert refusal.status == 400
    assert not DOCUMENTED_EVENT_TYPE.fullmatch(expected)


form_text = st.text(max_size=8) | st.text(alphabet="&=+%; #?a", max_size=6)


@given(st.lists(st.tuples(form_text.filter(bool), form_text), max_size=8))
def test_form_pairs_round_trip_with_repeated_keys_as_lists(pairs: list[tuple[str, str]]) -> None:
    parsed = parse_form(urlencode(pairs))
    expected: dict[str, list[str]] = {}
    for key, value in pairs:
        expected.setdefault(key, []).append(value)
    assert parsed == {k: v[0] if len(v) == 1 else v for k, v in expected.items()}


# Names built from safe letters only, so none of them can contain a secret-looking word.
ordinary_names = st.from_regex(r"[bdfgmqvwxyz][bdfgmqvwxyz0-9-]{0,15}", fullmatch=True) | (
    st.sampled_from(["Content-Type", "User-Agent", "X-Request-Id", "Accept", "X-GitHub-Event"])
)
secret_words = st.sampled_from(
    ["authorization", "cookie", "signature", "secret", "token", "api-key", "apikey", "x-api-key"]
)
secret_names = st.builds(
    lambda prefix, word, suffix, upper: (
        (prefix + word + suffix).upper() if upper else prefix + word.capitalize() + suffix
    ),
    st.sampled_from(["", "X-", "x-hub-", "Stripe-", "X-Webhook-"]),
    secret_words,
    st.sampled_from(["", "-256", "-Sha1", "s"]),
    st.booleans(),
)
header_values = st.binary(max_size=12)


@given(
    st.lists(st.tuples(ordinary_names, header_values), max_size=6),
    st.lists(st.tuples(secret_names, header_values), min_size=1, max_size=6),
    st.randoms(use_true_random=False),
)
def test_safe_headers_drop_credentials_and_keep_ordinary_headers(
    ordinary: list[tuple[str, bytes]], secret: list[tuple[str, bytes]], shuffle: Any
) -> None:
    raw = [(name.encode(), value) for name, value in [*ordinary, *secret]]
    shuffle.shuffle(raw)
    kept = safe_headers(raw)
    for name in kept:
        assert name == name.lower()
        assert not re.search(r"authorization|cookie|signature|secret|token", name)
    for secret_name, _ in secret:
        assert secret_name.lower() not in kept
    ordinary_names_sent = {name.encode() for name, _ in ordinary}
    expected: dict[str, list[str]] = {}
    for raw_name, raw_value in raw:
        if raw_name in ordinary_names_sent:
            expected.setdefault(raw_name.decode().lower(), []).append(raw_value.decode("latin-1"))
    assert kept == {name: ", ".join(values) for name, values in expected.items()}


# Every charset name Python knows (text codecs and not), plus a few that are not charsets at all.
charsets = st.sampled_from(
    sorted(
        {*encodings.aliases.aliases, *encodings.aliases.aliases.values()}
        | {"undefined", "idna", "punycode", "rot13", "base64", "utf-7", "bogus", ""}
    )
)
media_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/ld+json",
        "application/xml",
        "multipart/form-data",
        "",
    ]
)
content_types = (
    st.none()
    | st.builds(lambda media, charset: f"{media}; charset={charset}", media_types, charsets)
    | media_types
    | st.text(max_size=30)
)


@settings(max_examples=400)
@given(st.binary(max_size=200) | json_values.map(orjson.dumps), content_types)
def test_any_bytes_either_parse_to_a_dict_or_are_refused_with_a_4xx(
    body: bytes, content_type: str | None
) -> None:
    try:
        properties, kind = parse_body(body, content_type, max_depth=8)
    except EventstitchError as error:  # anything else (a 500 on the wire) fails the test
        refusal = error
    else:
        assert isinstance(properties, dict)
        assert kind in {"empty", "form", "object", "array", "string", "number", "boolean", "null"}
        return
    assert 400 <= refusal.status < 500
    assert refusal.message
