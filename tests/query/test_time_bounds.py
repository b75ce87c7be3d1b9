"""`since` and `until` at the ends of the calendar: every route that takes them answers 200 or a
400 naming the parameter, never a 500, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source

EARLIEST = "1970-01-01T00:00:00.000Z"
LATEST = "9999-12-31T00:00:00.000Z"

ROUTES: list[tuple[str, dict[str, str]]] = [
    ("/api/events", {}),
    ("/api/insights/counts", {}),
    *[("/api/insights/counts", {"by": by}) for by in ("minute", "hour", "day", "type", "source")],
    ("/api/insights/counts", {"by": "hour,type"}),
    ("/api/insights/conversion", {"by": "source"}),
    ("/api/insights/conversion", {"by": "type"}),
    ("/api/rejections", {}),
]


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    create_source(client, id="shop")
    assert client.post("/collect/order/shop", json={"n": 1}).status_code == 200
    assert client.post("/collect/order/nowhere", json={}).status_code == 404  # a rejection
    return client


def ask(client: TestClient, route: str, params: dict[str, str]) -> Any:
    return client.get(route, params=params)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "0001-01-01"),
        ("until", "0001-01-01T00:00:00+01:00"),
        ("since", "9999-12-31T23:59:59.999"),
        ("until", "9999-12-31T23:00:00-05:00"),
        ("since", "1969-12-31T23:59:59.999Z"),
        ("until", "9999-12-31T00:00:00.001Z"),
    ],
)
def test_a_time_off_the_supported_range_is_400_naming_the_parameter(
    seeded: TestClient, name: str, value: str
) -> None:
    for route, params in ROUTES:
        answer = ask(seeded, route, {**params, name: value})
        error = assert_error_shape(answer, 400)
        assert error["errors"][0]["field"] == name, (route, error)
        assert error["errors"][0]["earliest"] == EARLIEST
        assert error["errors"][0]["latest"] == LATEST
        assert f"{name} must be from {EARLIEST} to {LATEST}" in error["error"]


def test_the_ends_of_the_supported_range_are_accepted(seeded: TestClient) -> None:
    for route, params in ROUTES:
        windows = [(EARLIEST, "1970-01-02"), ("9999-12-30", LATEST)]
        if "by" not in params or params["by"] in ("type", "source"):
            windows.append((EARLIEST, LATEST))  # not a series: any width is answered
        for since, until in windows:
            answer = ask(seeded, route, {**params, "since": since, "until": until})
            assert answer.status_code == 200, (route, params, answer.text)
    late = ask(
        seeded, "/api/insights/counts", {"by": "day", "since": "9999-12-30", "until": LATEST}
    )
    assert late.json()["rows"] == [{"day": "9999-12-30T00:00:00.000Z", "count": 0}]
    early = ask(
        seeded,
        "/api/insights/counts",
        {"by": "hour", "since": EARLIEST, "until": "1970-01-01T02:00:00Z"},
    )
    assert [row["hour"] for row in early.json()["rows"]] == [
        "1970-01-01T00:00:00.000Z",
        "1970-01-01T01:00:00.000Z",
    ]


zones = st.sampled_from([None, UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
any_time = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=zones
    ).map(lambda moment: moment.isoformat()),
    st.dates().map(lambda day: day.isoformat()),
    st.integers().map(str),
    st.text(st.characters(codec="utf-8"), max_size=30),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from(ROUTES),
    since=st.none() | any_time,
    until=st.none() | any_time,
)
@example(
    route=("/api/insights/counts", {"by": "hour"}),
    since="0001-01-01T00:00:00+01:00",
    until="0001-01-01T02:00:00+01:00",
)
@example(
    route=("/api/insights/counts", {"by": "minute"}),
    since="9999-12-31T23:00:00-05:00",
    until="9999-12-31T23:10:00-05:00",
)
@example(route=("/api/insights/counts", {"by": "day"}), since="9999-12-31", until=None)
def test_any_since_or_until_is_answered_200_or_400_naming_it(
    seeded: TestClient,
    route: tuple[str, dict[str, str]],
    since: str | None,
    until: str | None,
) -> None:
    given_times = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
    answer = ask(seeded, route[0], {**route[1], **given_times})
    if answer.status_code == 200:
        return
    error = assert_error_shape(answer, 400)
    assert error["errors"][0]["field"] in {*given_times, "by"}, error
