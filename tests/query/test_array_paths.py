"""Array paths in filters, groupings and distinct counts, on both backends: `items.0.sku` is an
element by index (that key on an object), `items[*].sku` any element (docs/api.md)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import assert_error_shape, create_source

ORDERS = [
    {"order": "o1", "items": [{"sku": "A1"}, {"sku": "B2"}, {"sku": "A1"}]},
    {"order": "o2", "items": [{"sku": "B2", "qty": 2}]},
    {"order": "o3", "items": {"0": {"sku": "A1"}}},
    {"order": "o4", "items": []},
]
ALERTS = [
    {"delivery": "d1", "alerts": [{"labels": {"severity": "critical"}}, {"labels": {}}]},
    {"delivery": "d2", "alerts": [{"labels": {"severity": "warning"}}]},
]


def _store(client: TestClient, payloads: list[dict[str, Any]]) -> None:
    create_source(client, id="hooks")
    for payload in payloads:
        answer = client.post("/collect/delivery/hooks", json=payload)
        assert answer.status_code == 200, answer.text


def _orders(client: TestClient, **params: str) -> list[str]:
    answer = client.get("/api/events", params={"limit": "100", **params})
    assert answer.status_code == 200, answer.text
    return sorted(e["properties"]["order"] for e in answer.json()["events"])


def _counts(client: TestClient, **params: str) -> dict[str, Any]:
    answer = client.get("/api/insights/counts", params={"source_id": "hooks", **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_an_index_filter_finds_that_element_or_that_key_of_an_object(client: TestClient) -> None:
    _store(client, ORDERS)
    assert _orders(client, **{"properties.items.0.sku": "A1"}) == ["o1", "o3"]
    assert _orders(client, **{"properties.items.1.sku": "B2"}) == ["o1"]
    assert _orders(client, **{'properties.items."0".sku': "A1"}) == ["o3"]


def test_an_any_element_filter_matches_when_one_element_matches(client: TestClient) -> None:
    _store(client, ORDERS)
    assert _orders(client, **{"properties.items[*].sku": "B2"}) == ["o1", "o2"]
    assert _orders(client, **{"properties.items[*].qty": "2"}) == ["o2"]
    assert _orders(client, **{"properties.items[*].sku": "A1"}) == ["o1"]  # o3: an object


def test_grouping_by_any_element_counts_an_event_once_per_distinct_value(
    client: TestClient,
) -> None:
    _store(client, ORDERS)
    body = _counts(client, by="properties.items[*].sku")
    assert body["by"] == ["properties.items[*].sku"]
    assert body["total"] == 4
    counts = {row["properties.items[*].sku"]: row["count"] for row in body["rows"]}
    assert counts == {"A1": 1, "B2": 2, None: 2}


def test_grouping_by_an_index_reads_that_element(client: TestClient) -> None:
    _store(client, ALERTS)
    body = _counts(client, by="properties.alerts.0.labels.severity")
    counts = {row["properties.alerts.0.labels.severity"]: row["count"] for row in body["rows"]}
    assert counts == {"critical": 1, "warning": 1}


def test_distinct_through_any_element_counts_values_of_every_element(client: TestClient) -> None:
    _store(client, ORDERS)
    body = _counts(client, by="type", distinct="properties.items[*].sku")
    assert body["rows"] == [{"type": "delivery", "count": 4, "distinct": 2}]


@pytest.mark.parametrize(
    "path",
    ["properties.items[*][*].sku", "properties.items.10001", "properties.[*].sku"],
    ids=["two-any", "index-over-limit", "any-without-key"],
)
def test_array_paths_past_their_bounds_are_refused(client: TestClient, path: str) -> None:
    assert_error_shape(client.get("/api/events", params={path: "x"}), 400)
    assert_error_shape(client.get("/api/insights/counts", params={"by": path}), 400)


def test_the_largest_index_is_taken(client: TestClient) -> None:
    _store(client, ORDERS)
    assert _orders(client, **{"properties.items.10000": "x"}) == []
