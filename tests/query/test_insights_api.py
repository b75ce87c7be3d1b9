"""Counts over HTTP: `GET /api/insights/counts` by each dimension, series, filters, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source

HOUR = timedelta(hours=1)
BOTH = {"source_id": ["shop", "forms"]}  # leaves out the system events that sources create


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    """Twelve events: 8 from shop and 4 from forms, 6 of each type, users user-0..5 twice each;
    shop sees four users, forms two."""
    create_source(client, id="shop")
    create_source(client, id="forms")
    for n in range(12):
        source = "shop" if n % 3 else "forms"
        body = {"n": n, "user": f"user-{n % 6}", "plan": "pro" if n < 4 else "free"}
        assert client.post(f"/collect/type-{n % 2}/{source}", json=body).status_code == 200
    return client


def counts(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/insights/counts", params={**BOTH, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"by", "distinct", "total", "rows", "truncated", "from_rollup"}
    return body


def table(body: dict[str, Any], *keys: str, value: str = "count") -> dict[Any, int]:
    """Rows as {key: count} (or {(key, key): count} for two dimensions)."""
    found: dict[Any, int] = {}
    for row in body["rows"]:
        key = tuple(row[k] for k in keys)
        found[key[0] if len(keys) == 1 else key] = row[value]
    return found


def hour_of(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(minute=0, second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_counts_by_type(filled: TestClient) -> None:
    body = counts(filled, by="type")
    assert body["by"] == ["type"]
    assert body["distinct"] is None
    assert body["total"] == 12
    assert body["truncated"] is False
    assert body["from_rollup"] is True
    assert table(body, "type") == {"type-0": 6, "type-1": 6}


def test_counts_by_source_largest_first(filled: TestClient) -> None:
    body = counts(filled, by="source")
    assert body["rows"] == [{"source": "shop", "count": 8}, {"source": "forms", "count": 4}]


def test_counts_by_a_property(filled: TestClient) -> None:
    body = counts(filled, by="properties.user")
    assert body["by"] == ["properties.user"]
    assert body["from_rollup"] is False
    assert table(body, "properties.user") == {f"user-{n}": 2 for n in range(6)}


def test_distinct_values_of_a_property_per_group(filled: TestClient) -> None:
    body = counts(filled, by="source", distinct="properties.user")
    assert body["distinct"] == "properties.user"
    assert table(body, "source", value="distinct") == {"shop": 4, "forms": 2}
    assert table(body, "source") == {"shop": 8, "forms": 4}
    by_plan = counts(filled, by="properties.plan", distinct="properties.user")
    assert table(by_plan, "properties.plan", value="distinct") == {"pro": 4, "free": 6}


def test_counts_by_hour_and_type(filled: TestClient) -> None:
    body = counts(filled, by="hour,type")
    assert body["by"] == ["hour", "type"]
    assert sum(row["count"] for row in body["rows"]) == 12
    per_type: dict[str, int] = {}
    for row in body["rows"]:
        assert row["hour"].endswith(":00:00.000Z")
        per_type[row["type"]] = per_type.get(row["type"], 0) + row["count"]
    assert per_type == {"type-0": 6, "type-1": 6}
    hours = [row["hour"] for row in body["rows"]]
    assert hours == sorted(hours)


def test_an_hourly_series_with_since_is_complete_with_zero_hours(filled: TestClient) -> None:
    newest = filled.get("/api/events", params={**BOTH, "limit": 1}).json()["events"][0]
    last_hour = hour_of(newest["received_at"])
    since, until = last_hour - 5 * HOUR, last_hour + HOUR
    body = counts(filled, by="hour", since=iso(since), until=iso(until))
    assert body["from_rollup"] is True
    assert [row["hour"] for row in body["rows"]] == [iso(since + n * HOUR) for n in range(6)]
    assert [row["count"] for row in body["rows"][:4]] == [0, 0, 0, 0]
    assert sum(row["count"] for row in body["rows"]) == 12
    assert body["total"] == 12


def test_a_series_without_until_runs_to_now(filled: TestClient) -> None:
    newest = filled.get("/api/events", params={**BOTH, "limit": 1}).json()["events"][0]
    since = hour_of(newest["received_at"]) - 2 * HOUR
    body = counts(filled, by="hour", since=iso(since))
    assert len(body["rows"]) >= 3
    assert body["rows"][0] == {"hour": iso(since), "count": 0}
    assert sum(row["count"] for row in body["rows"]) == 12


def test_counts_take_the_same_filters_as_events(filled: TestClient) -> None:
    assert counts(filled, by="type", type="type-0")["total"] == 6
    assert table(counts(filled, by="type", source_id="forms"), "type") == {
        "type-0": 2,
        "type-1": 2,
    }
    by_user = counts(filled, by="type", **{"properties.user": "user-1"})
    assert by_user["from_rollup"] is False
    assert table(by_user, "type") == {"type-1": 2}
    assert counts(filled, by="type", profile_less="false")["rows"] == []
    future = iso(datetime.now(UTC) + timedelta(days=1))
    later = counts(filled, by="type", since=future)
    assert later["rows"] == []
    assert later["total"] == 0
    past = iso(datetime.now(UTC) - timedelta(days=1))
    assert counts(filled, by="type", until=past)["total"] == 0


def test_without_by_only_the_total_is_counted(filled: TestClient) -> None:
    body = counts(filled)
    assert body["by"] == []
    assert body["total"] == 12


@pytest.mark.parametrize(
    ("params", "field", "mentioned"),
    [
        ({"by": "colour"}, "by", "colour"),
        ({"by": "type,source,hour"}, "by", "two"),
        ({"by": "type,type"}, "by", "two"),
        ({"by": "hour,day"}, "by", "time"),
        ({"by": "properties."}, "by", "properties."),
        ({"by": "minute", "since": "2000-01-01"}, "by", "limit"),
        ({"by": "hour", "since": "2000-01-01T00:00:00Z", "until": "2026-01-01"}, "by", "limit"),
        ({"distinct": "user"}, "distinct", "user"),
        ({"distinct": "properties.a..b"}, "distinct", "a..b"),
        ({"by": "type", "since": "last week"}, "since", "last week"),
        ({"by": "type", "properties.": "x"}, "properties.", "properties."),
    ],
)
def test_bad_insight_queries_are_refused_with_the_parameter_named(
    filled: TestClient, params: dict[str, str], field: str, mentioned: str
) -> None:
    body = assert_error_shape(filled.get("/api/insights/counts", params=params), 400)
    assert body["errors"][0]["field"] == field
    assert mentioned in body["error"]


def test_too_many_buckets_say_the_limit(filled: TestClient) -> None:
    body = assert_error_shape(
        filled.get("/api/insights/counts", params={"by": "minute", "since": "2000-01-01"}), 400
    )
    assert body["errors"][0]["field"] == "by"
    assert "10000" in body["error"]


AWKWARD_KEYS = {  # the key as stored, and as a query writes it
    'a"b': 'properties.a"b',
    "a\\b": "properties.a\\b",
    "a\nb": "properties.a\nb",
    "a.b": 'properties."a.b"',
    "": 'properties.""',
    '"q': 'properties."\\"q"',
    "x,y": 'properties."x,y"',
}


@pytest.mark.parametrize("key", list(AWKWARD_KEYS))
def test_keys_with_quotes_backslashes_dots_or_control_characters_are_found(
    client: TestClient, key: str
) -> None:
    create_source(client, id="odd")
    for body in ({key: "one", "a": {"b": "nested"}}, {key: "one"}, {key: "two"}, {"other": 1}):
        assert client.post("/collect/k/odd", json=body).status_code == 200
    written = AWKWARD_KEYS[key]

    events = client.get("/api/events", params={"source_id": "odd", written: "one"})
    assert events.status_code == 200, events.text
    assert [e["properties"][key] for e in events.json()["events"]] == ["one", "one"]

    answer = counts(client, source_id="odd", by=written, distinct=written)
    assert answer["by"] == [written]
    assert answer["distinct"] == written
    assert [(row[written], row["count"], row["distinct"]) for row in answer["rows"]] == [
        ("one", 2, 1),
        (None, 1, 0),
        ("two", 1, 1),
    ]
