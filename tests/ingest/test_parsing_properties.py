"""Property tests for the parsing rules of the webhook bridge."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from eventstitch.errors import EventstitchError
from eventstitch.ingest.parsing import (
    EVENT_TYPE_PATTERN,
    NON_OBJECT_KEY,
    nesting_depth,
    normalise_event_type,
    parse_body,
    parse_form,
    safe_headers,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=20)
    | (st.floats(allow_nan=False, allow_infinity=False))
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_any_json_object_becomes_the_properties_unchanged(value: dict[str, Any]) -> None:
    properties, kind = parse_body(json.dumps(value).encode(), "application/json", max_depth=64)
    if value:
        assert properties == value
        assert kind == "object"


@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_a_value_that_is_not_an_object_is_kept_whole(value: Any) -> None:
    properties, _ = parse_body(json.dumps(value).encode(), "application/json", max_depth=64)
    assert properties == {NON_OBJECT_KEY: value}


@given(json_values)
def test_nesting_depth_agrees_with_the_plain_recursive_definition(value: Any) -> None:
    assert nesting_depth(value) == reference_depth(value)


@given(st.text(max_size=140))
def test_event_type_normalisation_is_idempotent_and_always_in_the_documented_set(raw: str) -> None:
    try:
        value = normalise_event_type(raw)
    except EventstitchError as error:
        assert error.status == 400  # noqa: PT017 - a property test: raising is one allowed outcome
        return
    assert EVENT_TYPE_PATTERN.match(value)
    assert normalise_event_type(value) == value


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)), max_size=8))
def test_form_pairs_round_trip_with_repeated_keys_as_lists(pairs: list[tuple[str, str]]) -> None:
    parsed = parse_form(urlencode(pairs))
    expected: dict[str, list[str]] = {}
    for key, value in pairs:
        expected.setdefault(key, []).append(value)
    assert parsed == {k: v[0] if len(v) == 1 else v for k, v in expected.items()}


header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)


@given(st.lists(st.tuples(header_names, st.text(max_size=10)), max_size=10))
def test_safe_headers_never_keep_credentials(headers: list[tuple[str, str]]) -> None:
    raw = [(n.encode(), v.encode("latin-1", "replace")) for n, v in headers]
    kept = safe_headers([*raw, (b"Authorization", b"x"), (b"Cookie", b"y")])
    for name in kept:
        assert name == name.lower()
        assert not re.search(r"authorization|cookie|signature|secret|token", name)
    for name, _ in headers:
        lowered = name.lower()
        if not re.search(
            r"signature|secret|token|passw|api[-_]?key|auth|hmac|credential|session|csrf|private|cookie",
            lowered,
        ):
            assert lowered in kept


content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
        "application/json; charset=bogus",
        "application/xml",
        "multipart/form-data",
        "application/ld+json",
        "text/plain; charset=latin-1",
    ]
) | st.text(max_size=30)


@settings(max_examples=300)
@given(st.binary(max_size=200), content_types)
def test_any_bytes_either_parse_to_a_dict_or_are_refused_with_a_4xx(
    body: bytes, content_type: str | None
) -> None:
    try:
        properties, kind = parse_body(body, content_type, max_depth=8)
    except EventstitchError as error:
        assert 400 <= error.status < 500  # noqa: PT017 - refusing is one allowed outcome
        return
    assert isinstance(properties, dict)
    assert isinstance(kind, str)
