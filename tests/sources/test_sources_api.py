"""Managing sources over HTTP: create, list, show, change, remove, and what each refuses."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from eventstitch.ids import iso_to_ms, now_ms
from tests.conftest import assert_error_shape, create_source, stored_events

SOURCE_FIELDS = {
    "id",
    "name",
    "kind",
    "preset",
    "enabled",
    "description",
    "tags",
    "identification",
    "traits",
    "shaping",
    "delivery_id_path",
    "signature",
    "rate_limit",
    "write_key",
    "previous_write_key_valid_until",
    "created_at",
    "updated_at",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def later_than(stamp: str) -> None:
    """Wait until the clock has passed `stamp` (ISO, ms), so a change gets a later time."""
    while now_ms() <= iso_to_ms(stamp):
        time.sleep(0.001)


def test_create_with_a_given_id_answers_the_source(client: TestClient) -> None:
    answer = client.post(
        "/api/sources",
        json={
            "id": "shop.eu_1-a",
            "name": "Boutique Zoë",
            "tags": ["eu", "orders"],
            "description": "orders and refunds",
        },
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == SOURCE_FIELDS
    assert created["id"] == "shop.eu_1-a"
    assert created["name"] == "Boutique Zoë"
    assert created["kind"] == "webhook"
    assert created["enabled"] is True
    assert created["tags"] == ["eu", "orders"]
    assert created["description"] == "orders and refunds"
    assert created["created_at"] == created["updated_at"]
    assert client.get("/api/sources/shop.eu_1-a").json() == created


def test_create_without_an_id_generates_one(client: TestClient) -> None:
    first = create_source(client, name="First")
    second = create_source(client, name="Second")
    assert UUID.fullmatch(first["id"])
    assert first["id"] != second["id"]
    assert client.get(f"/api/sources/{first['id']}").json() == first


def test_create_takes_either_kind_and_may_start_disabled(client: TestClient) -> None:
    tracker = create_source(client, id="site", kind="tracker", enabled=False)
    assert tracker["kind"] == "tracker"
    assert tracker["enabled"] is False


def test_list_has_every_source_oldest_first(client: TestClient) -> None:
    made = [create_source(client, id=f"s{n}", name=f"Source {n}") for n in range(3)]
    listed = client.get("/api/sources").json()
    assert set(listed) == {"sources", "next_cursor"}
    assert listed["next_cursor"] is None  # one page holds them all
    by_id = {s["id"]: s for s in listed["sources"]}
    assert set(by_id) == {"system", "s0", "s1", "s2"}
    for source in made:
        assert by_id[source["id"]] == source
    ours = [s["id"] for s in listed["sources"] if s["id"] != "system"]
    assert ours == ["s0", "s1", "s2"]


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Renamed"},
        {"enabled": False},
        {"kind": "tracker"},
        {"description": "new words"},
        {"tags": ["x", "y"]},
        {"tags": []},
        {"name": "Both", "enabled": False},
    ],
)
def test_patch_changes_only_the_fields_sent_and_moves_updated_at(
    client: TestClient, change: dict[str, Any]
) -> None:
    created = create_source(client, id="shop", name="Shop", tags=["eu"], description="orders")
    later_than(created["updated_at"])
    answer = client.patch("/api/sources/shop", json=change)
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    # A source made a tracker gets its write key then.
    key = {"write_key": changed["write_key"]} if change.get("kind") == "tracker" else {}
    assert changed == {**created, **change, **key, "updated_at": changed["updated_at"]}
    assert changed["updated_at"] > created["updated_at"]
    assert changed["created_at"] == created["created_at"]
    assert client.get("/api/sources/shop").json() == changed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"id": "other"}, "id"),
        ({"created_at": "2020-01-01"}, "created_at"),
        ({}, None),
        ({"name": None}, "name"),
        ({"enabled": None}, "enabled"),
        ({"name": ""}, "name"),
        ({"kind": "carrier-pigeon"}, "kind"),
        ({"kind": "system"}, "kind"),
        ({"tags": "eu"}, "tags"),
    ],
)
def test_a_bad_patch_is_422_and_changes_nothing(
    client: TestClient, body: dict[str, Any], field: str | None
) -> None:
    created = create_source(client, id="shop", name="Shop")
    error = assert_error_shape(client.patch("/api/sources/shop", json=body), 422)
    if field is not None:
        assert any(field in str(e.get("field", "")) for e in error["errors"]), error
    assert client.get("/api/sources/shop").json() == created


@pytest.mark.parametrize(
    "source_id",
    ["bad id!", "-leading-dash", ".dot", "a" * 65, "", "slash/inside", "ünï", "a\nb", "ab\n"],
)
def test_an_id_outside_the_pattern_is_422(client: TestClient, source_id: str) -> None:
    error = assert_error_shape(
        client.post("/api/sources", json={"id": source_id, "name": "x"}), 422
    )
    assert error["errors"][0]["field"].endswith("id")
    assert source_id not in {s["id"] for s in client.get("/api/sources").json()["sources"]}


def test_an_id_of_64_allowed_characters_is_taken(client: TestClient) -> None:
    long_id = "A1._-" + "z" * 59
    assert create_source(client, id=long_id)["id"] == long_id


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "kind": "carrier-pigeon"},
        {"name": "x", "kind": "system"},
        {"id": "x"},
        {"name": ""},
        {"name": "x", "colour": "red"},
        {"name": "x", "enabled": "sometimes"},
    ],
)
def test_a_bad_source_is_422_and_not_created(client: TestClient, body: dict[str, Any]) -> None:
    before = client.get("/api/sources").json()
    assert_error_shape(client.post("/api/sources", json=body), 422)
    assert client.get("/api/sources").json() == before


def test_a_duplicate_id_is_409_and_keeps_the_first(client: TestClient) -> None:
    first = create_source(client, id="shop", name="First")
    error = assert_error_shape(client.post("/api/sources", json={"id": "shop", "name": "2"}), 409)
    assert "shop" in error["error"]
    assert client.get("/api/sources/shop").json() == first


def test_delete_answers_204_then_the_source_is_gone(client: TestClient) -> None:
    create_source(client, id="shop")
    answer = client.delete("/api/sources/shop")
    assert answer.status_code == 204
    assert answer.content == b""
    assert_error_shape(client.get("/api/sources/shop"), 404)
    assert_error_shape(client.delete("/api/sources/shop"), 404)
    assert_error_shape(client.patch("/api/sources/shop", json={"enabled": True}), 404)
    assert "shop" not in {s["id"] for s in client.get("/api/sources").json()["sources"]}


def test_a_removed_source_keeps_its_events_and_refuses_new_ones(client: TestClient) -> None:
    create_source(client, id="shop")
    kept = client.post("/collect/order/shop", json={"n": 1}).json()["id"]
    assert client.delete("/api/sources/shop").status_code == 204
    assert_error_shape(client.post("/collect/order/shop", json={"n": 2}), 404)
    assert [e["id"] for e in stored_events(client, source_id="shop")] == [kept]


def test_a_disabled_source_refuses_events_at_once_and_takes_them_again_when_enabled(
    client: TestClient,
) -> None:
    create_source(client, id="shop")
    client.patch("/api/sources/shop", json={"enabled": False})
    assert_error_shape(client.post("/collect/order/shop", json={"n": 1}), 403)
    client.patch("/api/sources/shop", json={"enabled": True})
    assert client.post("/collect/order/shop", json={"n": 2}).status_code == 200
    assert [e["properties"]["n"] for e in stored_events(client, source_id="shop")] == [2]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/sources/missing"), ("DELETE", "/api/sources/missing")],
)
def test_an_unknown_source_is_404(client: TestClient, method: str, path: str) -> None:
    error = assert_error_shape(client.request(method, path), 404)
    assert "missing" in error["error"]


def test_the_system_source_is_read_only(client: TestClient) -> None:
    system = client.get("/api/sources/system").json()
    assert system["kind"] == "system"
    assert_error_shape(client.patch("/api/sources/system", json={"enabled": False}), 403)
    assert_error_shape(client.delete("/api/sources/system"), 403)
    assert client.get("/api/sources/system").json() == system
