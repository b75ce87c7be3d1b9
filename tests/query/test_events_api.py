"""Reading events back over HTTP: `GET /api/events` filters and paging, and one event by id."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source, stored_events

EVENT_FIELDS = {
    "id",
    "type",
    "source_id",
    "received_at",
    "profile_less",
    "profile_id",
    "session_id",
    "properties",
    "context",
    "converted_at",
    "converted_by",
}
BOTH = {"source_id": ["shop", "forms"]}  # leaves out the system events that sources create


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    """Twelve events through the webhook bridge: n = 0..11, oldest first."""
    create_source(client, id="shop")
    create_source(client, id="forms")
    for n in range(12):
        source = "shop" if n % 3 else "forms"
        body = {
            "n": n,
            "user": f"user-{n % 4}",
            "customer": {"email": f"c{n % 2}@x.com", "vip": n == 7},
            "seats": n % 3,
        }
        answer = client.post(f"/collect/type-{n % 2}/{source}", json=body)
        assert answer.status_code == 200, answer.text
    return client


def numbers(client: TestClient, **params: Any) -> list[int]:
    """The `n` of every matching event, in the order the API gives them."""
    return [e["properties"]["n"] for e in stored_events(client, **{**BOTH, **params})]


def shift(iso: str, **delta: int) -> str:
    return (datetime.fromisoformat(iso) + timedelta(**delta)).isoformat()


def test_one_event_has_exactly_the_documented_fields(filled: TestClient) -> None:
    listed = stored_events(filled, source_id="shop")[0]
    event = filled.get(f"/api/events/{listed['id']}").json()
    assert set(event) == EVENT_FIELDS
    assert event == listed
    assert event["type"] == "type-1"
    assert event["source_id"] == "shop"
    assert event["profile_less"] is True
    assert event["profile_id"] is None
    assert event["session_id"] is None
    assert event["properties"] == {
        "n": 11,
        "user": "user-3",
        "customer": {"email": "c1@x.com", "vip": False},
        "seats": 2,
    }
    assert isinstance(event["context"], dict)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["received_at"])


def test_the_listing_is_newest_first_with_a_null_cursor_when_complete(
    filled: TestClient,
) -> None:
    answer = filled.get("/api/events", params={**BOTH, "limit": 100}).json()
    assert set(answer) == {"events", "next_cursor"}
    assert answer["next_cursor"] is None
    assert [e["properties"]["n"] for e in answer["events"]] == list(range(11, -1, -1))
    for event in answer["events"]:
        assert set(event) == EVENT_FIELDS


def test_type_and_source_filters_narrow_and_repeat(filled: TestClient) -> None:
    assert numbers(filled, type="type-1") == [11, 9, 7, 5, 3, 1]
    assert numbers(filled, type=["type-0", "type-1"]) == list(range(11, -1, -1))
    assert numbers(filled, type="no-such-type") == []
    assert numbers(filled, source_id="forms") == [9, 6, 3, 0]
    assert numbers(filled, source_id="forms", type="type-0") == [6, 0]


def test_profile_less_and_profile_id_filters(filled: TestClient) -> None:
    assert len(numbers(filled, profile_less="true")) == 12
    assert numbers(filled, profile_less="false") == []
    assert numbers(filled, profile_id="01a20000-0000-7000-8000-000000000000") == []


def test_property_filters_match_nested_paths_numbers_booleans_and_combine(
    filled: TestClient,
) -> None:
    assert numbers(filled, **{"properties.user": "user-1"}) == [9, 5, 1]
    assert numbers(filled, **{"properties.customer.email": "c0@x.com"}) == [10, 8, 6, 4, 2, 0]
    assert numbers(filled, **{"properties.n": "7"}) == [7]
    assert numbers(filled, **{"properties.n": "7.0"}) == [7]
    assert numbers(filled, **{"properties.customer.vip": "true"}) == [7]
    assert numbers(filled, **{"properties.seats": "0", "properties.user": "user-0"}) == [0]
    assert numbers(filled, **{"properties.user": "USER-1"}) == []
    assert numbers(filled, **{"properties.missing": "null"}) == []
    assert numbers(filled, **{"properties.customer": "c0@x.com"}) == []


def test_since_is_inclusive_and_until_exclusive(filled: TestClient) -> None:
    events = stored_events(filled, **BOTH)
    middle = events[5]["received_at"]
    newer_or_same = [e["properties"]["n"] for e in events if e["received_at"] >= middle]
    older = [e["properties"]["n"] for e in events if e["received_at"] < middle]
    assert numbers(filled, since=middle) == newer_or_same
    assert numbers(filled, until=middle) == older
    assert numbers(filled, since=middle, until=middle) == []
    assert 6 in newer_or_same
    assert 6 not in older


def test_times_with_a_zone_offset_or_a_date_alone_are_understood(filled: TestClient) -> None:
    events = stored_events(filled, **BOTH)
    middle = events[5]["received_at"]
    instant = datetime.fromisoformat(middle)
    in_paris = instant.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert numbers(filled, since=in_paris) == numbers(filled, since=middle)
    naive = instant.astimezone(UTC).replace(tzinfo=None).isoformat()  # no zone means UTC
    assert numbers(filled, since=naive) == numbers(filled, since=middle)
    yesterday = (instant - timedelta(days=1)).date().isoformat()
    assert len(numbers(filled, since=yesterday)) == 12
    assert numbers(filled, until=yesterday) == []
    assert numbers(filled, since=shift(events[0]["received_at"], milliseconds=1)) == []


@pytest.mark.parametrize("limit", [1, 5, 6, 7, 12, 13])
def test_pages_are_disjoint_complete_and_end_with_a_null_cursor(
    filled: TestClient, limit: int
) -> None:
    pages: list[list[int]] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {**BOTH, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        answer = filled.get("/api/events", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append([e["properties"]["n"] for e in page["events"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert [n for page in pages for n in page] == list(range(11, -1, -1))
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit  # no empty page at the end, even at an exact multiple


def test_a_cursor_keeps_to_the_filters(filled: TestClient) -> None:
    first = filled.get("/api/events", params={"type": "type-0", **BOTH, "limit": 2}).json()
    assert [e["properties"]["n"] for e in first["events"]] == [10, 8]
    rest = filled.get(
        "/api/events",
        params={"type": "type-0", **BOTH, "limit": 10, "cursor": first["next_cursor"]},
    ).json()
    assert [e["properties"]["n"] for e in rest["events"]] == [6, 4, 2, 0]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": 100000}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 10**30}, "limit"),
        ({"limit": -(2**63) - 1}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-11-22T25:00:00"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "bm90LWFuLWlk"}, "cursor"),  # base64 of something that is not an event id
        ({"properties.": "x"}, "properties."),
        ({"properties.a..b": "x"}, "properties.a..b"),
    ],
)
def test_bad_query_parameters_are_refused_with_the_field_named(
    filled: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_error_shape(filled.get("/api/events", params=params), 400)
    assert body["errors"][0]["field"] == field
    assert field.rstrip(".") in body["error"]


def test_a_limit_that_is_not_a_number_is_refused(filled: TestClient) -> None:
    body = assert_error_shape(filled.get("/api/events", params={"limit": "many"}), 422)
    assert "limit" in body["error"]


def test_an_unknown_event_is_404(filled: TestClient) -> None:
    unknown = "01a20000-0000-7000-8000-000000000000"
    body = assert_error_shape(filled.get(f"/api/events/{unknown}"), 404)
    assert unknown in body["error"]
    assert_error_shape(filled.get("/api/events/not-an-id"), 404)
