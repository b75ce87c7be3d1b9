"""One policy for numbers and encodings at ingest, on both backends: integers within signed 64
bits are stored and found exactly, beyond them refused (`integer_out_of_range`); floats that
overflow or underflow refused (`number_out_of_range`); bytes that are not what the charset says
refused (`bad_encoding`), never stored as replacement characters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventstitch.errors import BadRequest
from eventstitch.ingest.parsing import parse_body
from tests.conftest import all_events, assert_error_shape, create_source
from tests.ingest.test_collect_refusals import rejected

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def hooks(client: TestClient) -> TestClient:
    create_source(client, id="hooks")
    create_source(client, id="web", kind="tracker")
    return client


def refused(client: TestClient, answer: Any, status: int, reason: str, before: float) -> str:
    """The answer is a refusal counted under `reason`; its message."""
    error = assert_error_shape(answer, status)
    assert rejected(client, reason) == before + 1, error
    message: str = error["error"]
    return message


def track_body(properties: bytes) -> bytes:
    return (
        b'{"source": {"id": "web"}, "events": [{"type": "t", "properties": ' + properties + b"}]}"
    )


@pytest.mark.parametrize(
    ("body", "headers", "reason", "says"),
    [
        (
            b'{"a": "\xff\xfe"}',
            {"content-type": "application/json; charset=utf-8"},
            "bad_encoding",
            "not valid utf-8 at byte 7",
        ),
        (b'{"a": "\xc3"}', JSON, "bad_encoding", "not valid utf-8"),
        (b'{"a": "\xed\xa0\x80"}', {}, "bad_encoding", "not valid utf-8"),  # a surrogate
        (b'{"n": ' + b"9" * 400 + b"}", JSON, "integer_out_of_range", "outside signed 64 bits"),
        (b'{"n": 9223372036854775808}', JSON, "integer_out_of_range", "outside signed 64 bits"),
        (b'{"n": -9223372036854775809}', JSON, "integer_out_of_range", "outside signed 64 bits"),
        (b'{"n": [18446744073709551615]}', JSON, "integer_out_of_range", "9223372036854775807"),
        (b'{"x": 1e-400}', JSON, "number_out_of_range", "1e-400 underflows"),
        (b'{"x": 1e400}', JSON, "number_out_of_range", "1e400 overflows"),
        (b'{"x": -2.5E+999}', {"content-type": "text/plain"}, "number_out_of_range", "overflows"),
        (b"a=%FF%FE", FORM, "bad_encoding", "percent-escapes are not valid utf-8"),
        (b"a=1&b=%C3", FORM, "bad_encoding", "percent-escapes are not valid utf-8"),
    ],
)
def test_a_number_or_text_that_would_not_be_stored_as_sent_is_refused_with_its_reason(
    hooks: TestClient, body: bytes, headers: dict[str, str], reason: str, says: str
) -> None:
    before = rejected(hooks, reason)
    answer = hooks.post("/collect/order/hooks", content=body, headers=headers)
    assert says in refused(hooks, answer, 400, reason, before)
    if headers != FORM:  # the same body inside a tracker call
        before = rejected(hooks, reason)
        answer = hooks.post("/track", content=track_body(body), headers=JSON)
        assert says in refused(hooks, answer, 400, reason, before)
    assert all_events(hooks, source_id=["hooks", "web"]) == []


def test_a_query_string_that_is_not_utf_8_is_refused_not_stored_lossily(
    hooks: TestClient,
) -> None:
    before = rejected(hooks, "bad_encoding")
    answer = hooks.get("/collect/ping/hooks?a=%FF%FE")
    message = refused(hooks, answer, 400, "bad_encoding", before)
    assert "query's percent-escapes are not valid utf-8" in message
    assert all_events(hooks, source_id="hooks") == []


def test_the_widest_signed_64_bit_integers_are_stored_and_found_exactly(
    hooks: TestClient,
) -> None:
    for n in (INT64_MAX - 1, INT64_MAX, INT64_MIN, INT64_MIN + 1):
        body = json.dumps({"n": n}).encode()
        assert hooks.post("/collect/n/hooks", content=body, headers=JSON).status_code == 200
    for n in (INT64_MAX, INT64_MIN):
        found = all_events(hooks, source_id="hooks", **{"properties.n": str(n)})
        assert [e["properties"]["n"] for e in found] == [n]  # not its neighbour
    over = hooks.post("/collect/n/hooks", content=b'{"n": 9223372036854775808}', headers=JSON)
    assert_error_shape(over, 400)
    assert len(all_events(hooks, source_id="hooks")) == 4


def test_form_and_query_values_stay_strings_whatever_digits_they_hold(hooks: TestClient) -> None:
    """Form fields and query parameters are text: a long run of digits is kept as written."""
    digits = "9" * 40
    posted = hooks.post("/collect/f/hooks", content=f"n={digits}".encode(), headers=FORM)
    got = hooks.get(f"/collect/q/hooks?n={digits}")
    for answer in (posted, got):
        assert answer.status_code == 200, answer.text
        stored = hooks.get(f"/api/events/{answer.json()['id']}").json()
        assert stored["properties"] == {"n": digits}


# -- the rule itself, on any number literal ------------------------------------------------------

integer_literals = st.integers(-(2**70), 2**70).map(str) | st.builds(
    lambda digits, sign: sign + (digits.lstrip("0") or "0"),
    st.text("0123456789", min_size=1, max_size=500),
    st.sampled_from(["", "-"]),
)
float_literals = st.builds(
    lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}e{exponent}",
    st.sampled_from(["", "-"]),
    st.integers(0, 99).map(str),
    st.sampled_from(["", ".5", ".000001"]),
    st.integers(-1000, 1000),
)


@settings(max_examples=300)
@given(literal=integer_literals)
@example(literal=str(INT64_MAX))
@example(literal=str(INT64_MAX + 1))
@example(literal=str(INT64_MIN))
@example(literal=str(INT64_MIN - 1))
def test_an_integer_is_kept_exactly_when_it_fits_signed_64_bits_else_refused(
    literal: str,
) -> None:
    body = b'{"n": ' + literal.encode() + b"}"
    if INT64_MIN <= int(literal) <= INT64_MAX:
        assert parse_body(body, "application/json", max_depth=32)[0] == {"n": int(literal)}
    else:
        with pytest.raises(BadRequest) as refusal:
            parse_body(body, "application/json", max_depth=32)
        assert refusal.value.reason == "integer_out_of_range"


@settings(max_examples=300)
@given(literal=float_literals)
@example(literal="1e-400")
@example(literal="1e400")
@example(literal="0e-999")
@example(literal="4.9e-324")
@example(literal="1.7976931348623157e308")
def test_a_float_is_kept_when_a_64_bit_float_holds_it_else_refused(literal: str) -> None:
    body = b'{"x": ' + literal.encode() + b"}"
    value = float(literal)
    mantissa_is_zero = float(literal.partition("e")[0]) == 0
    if value not in (float("inf"), float("-inf")) and (value != 0 or mantissa_is_zero):
        assert parse_body(body, "application/json", max_depth=32)[0] == {"x": value}
    else:
        with pytest.raises(BadRequest) as refusal:
            parse_body(body, "application/json", max_depth=32)
        assert refusal.value.reason == "number_out_of_range"


@settings(max_examples=200)
@given(raw=st.binary(max_size=12))
def test_a_form_is_stored_only_when_its_escapes_are_utf_8(raw: bytes) -> None:
    escaped = "".join(f"%{byte:02X}" for byte in raw).encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(BadRequest) as refusal:
            parse_body(b"k=" + escaped, "application/x-www-form-urlencoded", max_depth=32)
        assert refusal.value.reason == "bad_encoding"
        return
    assert parse_body(b"k=" + escaped, "application/x-www-form-urlencoded", max_depth=32) == (
        {"k": text},
        "form",
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(INT64_MIN, INT64_MAX) | st.integers(-(2**66), 2**66))
@example(n=INT64_MAX + 1)
@example(n=INT64_MIN - 1)
def test_over_http_any_integer_is_stored_exactly_or_refused_by_its_range(
    hooks: TestClient, n: int
) -> None:
    before = rejected(hooks, "integer_out_of_range")
    answer = hooks.post("/collect/n/hooks", content=b'{"n": %d}' % n, headers=JSON)
    if INT64_MIN <= n <= INT64_MAX:
        assert answer.status_code == 200, answer.text
        stored = hooks.get(f"/api/events/{answer.json()['id']}").json()
        assert stored["properties"] == {"n": n}
    else:
        refused(hooks, answer, 400, "integer_out_of_range", before)
