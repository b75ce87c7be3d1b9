"""Property: `properties.<path>=<value>` returns exactly the events whose property equals the
value under the documented rules (docs/api.md): strings exactly, a value written as a JSON number
matches numbers numerically, `true`/`false`/`null` match those JSON literals."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import create_source, stored_events

JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
MISSING = object()
PATHS = [("v",), ("deep", "er", "v")]

texts = st.text(alphabet="ab5 .-+&=%#é🐢eE01", max_size=4)
scalars = st.one_of(
    texts,
    st.integers(-1000, 1000),
    st.integers(-4000, 4000).map(lambda n: n / 4),  # exact in binary: no rounding questions
    st.booleans(),
    st.none(),
)
stored_values = st.one_of(scalars, st.just(MISSING), st.just([1]), st.just({"v": 1}))
_source_numbers = itertools.count()


def spellings(value: Any) -> list[str]:
    """Ways a person might write a query value meaning this stored value."""
    if value is MISSING or isinstance(value, list | dict):
        return ["null", "1"]
    if isinstance(value, bool) or value is None:
        return [json.dumps(value), str(value)]
    if isinstance(value, int | float):
        written = [str(value), json.dumps(value), f"{value:.2f}", f"{float(value):e}"]
        # Not JSON numbers, though Python's int() or float() would take them: strings, then.
        return [*written, f"+{value}", f"0{value}", f" {value}", f"{value}\n", f"{value:_}"]
    return [value, value.upper(), value + " "]


def matches(stored: Any, asked: str) -> bool:
    """The documented rule, written independently of the implementation."""
    if stored is MISSING or isinstance(stored, list | dict):
        return False
    if isinstance(stored, bool):
        return asked == ("true" if stored else "false")
    if stored is None:
        return asked == "null"
    if isinstance(stored, int | float):
        return bool(JSON_NUMBER.fullmatch(asked)) and float(asked) == stored
    return bool(stored == asked)


def put(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    if value is MISSING:
        return {"other": 1}
    body: Any = value
    for key in reversed(path):
        body = {key: body}
    result: dict[str, Any] = body
    return result


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(stored_values, min_size=1, max_size=8),
    path=st.sampled_from(PATHS),
    data=st.data(),
)
def test_property_filter_returns_exactly_the_matching_events(
    client: TestClient, values: list[Any], path: tuple[str, ...], data: st.DataObject
) -> None:
    source_id = f"prop-{next(_source_numbers)}"  # a fresh source per example: nothing else in it
    create_source(client, id=source_id)
    candidates = [s for v in values for s in spellings(v)]
    asked = data.draw(
        st.one_of(st.sampled_from(candidates), texts, st.from_regex(JSON_NUMBER, fullmatch=True)),
        label="asked",
    )
    ids = []
    for value in values:
        answer = client.post(f"/collect/p/{source_id}", json=put(path, value))
        assert answer.status_code == 200, answer.text
        ids.append(answer.json()["id"])

    found = {
        e["id"]
        for e in stored_events(
            client, source_id=source_id, **{"properties." + ".".join(path): asked}
        )
    }

    expected = {i for i, v in zip(ids, values, strict=True) if matches(v, asked)}
    assert found == expected
