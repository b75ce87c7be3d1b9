"""Reading events back: filters, paging, single events, counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source, stored_events


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    create_source(client, id="shop")
    create_source(client, id="forms")
    for n in range(12):
        source = "shop" if n % 3 else "forms"
        body = {"n": n, "user": f"user-{n % 4}", "customer": {"email": f"c{n % 2}@x.com"}}
        assert client.post(f"/collect/type-{n % 2}/{source}", json=body).status_code == 200
    return client


def test_one_event_has_exactly_the_documented_fields(filled: TestClient) -> None:
    first = stored_events(filled, source_id="shop")[0]
    event = filled.get(f"/api/events/{first['id']}").json()
    assert set(event) == {
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
    assert event == first


def test_filters_narrow_the_listing(filled: TestClient) -> None:
    assert len(stored_events(filled, source_id="shop")) == 8
    assert len(stored_events(filled, type="type-1")) == 6
    assert len(stored_events(filled, type=["type-0", "type-1"], source_id="forms")) == 4
    assert len(stored_events(filled, **{"properties.user": "user-1"})) == 3
    assert len(stored_events(filled, **{"properties.customer.email": "c0@x.com"})) == 6
    assert len(stored_events(filled, **{"properties.n": "7"})) == 1
    assert len(stored_events(filled, profile_less="true", source_id="shop")) == 8
    assert stored_events(filled, profile_less="false", source_id="shop") == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert stored_events(filled, since=later) == []
    assert len(stored_events(filled, until=later, source_id="shop")) == 8


def test_paging_is_newest_first_disjoint_and_complete(filled: TestClient) -> None:
    seen = []
    cursor = None
    for _ in range(10):
        params = {
            "limit": 5,
            "source_id": ["shop", "forms"],
            **({"cursor": cursor} if cursor else {}),
        }
        page = filled.get("/api/events", params=params).json()
        seen += [e["properties"]["n"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(11, -1, -1))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 100000}, "limit"),
        ({"limit": 0}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"properties.": "x"}, "properties."),
    ],
)
def test_bad_query_parameters_are_named(
    filled: TestClient, params: dict[str, object], field: str
) -> None:
    body = assert_error_shape(filled.get("/api/events", params=params), 400)
    assert body["errors"][0]["field"] == field


def test_an_unknown_event_is_404(filled: TestClient) -> None:
    assert_error_shape(filled.get("/api/events/01a20000-0000-7000-8000-000000000000"), 404)


def test_counts_by_type_source_property_and_distinct(filled: TestClient) -> None:
    def counts(**params: object) -> dict[str, object]:
        answer = filled.get(
            "/api/insights/counts", params={"source_id": ["shop", "forms"], **params}
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        return body

    by_type = counts(by="type")
    assert by_type["total"] == 12
    assert by_type["from_rollup"] is True
    assert {r["type"]: r["count"] for r in by_type["rows"]} == {"type-0": 6, "type-1": 6}  # type: ignore[attr-defined, index]
    by_source = counts(by="source")
    assert {r["source"]: r["count"] for r in by_source["rows"]} == {"shop": 8, "forms": 4}  # type: ignore[attr-defined, index]
    by_user = counts(by="properties.user")
    assert by_user["from_rollup"] is False
    assert {r["properties.user"]: r["count"] for r in by_user["rows"]} == {  # type: ignore[attr-defined, index]
        f"user-{n}": 3 for n in range(4)
    }
    distinct = counts(by="source", distinct="properties.user")
    assert {r["source"]: r["distinct"] for r in distinct["rows"]} == {"shop": 4, "forms": 4}  # type: ignore[attr-defined, index]
    two = counts(by="hour,type")
    assert sum(r["count"] for r in two["rows"]) == 12  # type: ignore[attr-defined, index]


def test_a_time_series_is_complete_with_zero_intervals(filled: TestClient) -> None:
    since = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    body = filled.get("/api/insights/counts", params={"by": "hour", "since": since}).json()
    assert len(body["rows"]) in (5, 6)  # the current hour, and five before it
    assert [r["count"] for r in body["rows"][:-1]] == [0] * (len(body["rows"]) - 1)
    assert body["rows"][-1]["count"] >= 12


@pytest.mark.parametrize(
    "params",
    [
        {"by": "colour"},
        {"by": "type,source,hour"},
        {"by": "hour,day"},
        {"by": "minute", "since": "2000-01-01"},
        {"distinct": "user"},
    ],
)
def test_bad_insight_queries_are_refused(filled: TestClient, params: dict[str, str]) -> None:
    assert_error_shape(filled.get("/api/insights/counts", params=params), 400)


values = st.one_of(
    st.sampled_from(["a", "b", "5", "true"]), st.integers(0, 6), st.booleans(), st.none()
)


def matches(stored: object, asked: str) -> bool:
    if isinstance(stored, bool):
        return asked == ("true" if stored else "false")
    if stored is None:
        return asked == "null"
    if isinstance(stored, int):
        return asked.lstrip("-").isdigit() and int(asked) == stored
    return stored == asked


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(values, min_size=1, max_size=8),
    st.sampled_from(["a", "b", "5", "0", "true", "false", "null"]),
)
def test_property_filter_returns_exactly_the_matching_events(
    client: TestClient, stored: list[object], asked: str
) -> None:
    if client.get("/api/sources/prop").status_code == 404:
        create_source(client, id="prop")
    run = client.post("/collect/batch/prop", json={}).json()["id"]  # a marker: only newer events
    ids = [client.post("/collect/p/prop", json={"v": v}).json()["id"] for v in stored]
    found = {
        e["id"] for e in stored_events(client, type="p", **{"properties.v": asked}) if e["id"] > run
    }
    assert found == {i for i, v in zip(ids, stored, strict=True) if matches(v, asked)}
