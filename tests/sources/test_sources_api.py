"""Managing sources over HTTP, and the guard on every /api route."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from tests.conftest import assert_error_shape, create_source


def test_create_with_a_given_id_or_a_generated_one(client: TestClient) -> None:
    given = create_source(client, id="shop", name="Shop", tags=["eu"], description="orders")
    assert given["id"] == "shop"
    assert given["kind"] == "webhook"
    assert given["enabled"] is True
    assert given["tags"] == ["eu"]
    generated = create_source(client, name="Other")
    assert len(generated["id"]) == 36
    listed = [s["id"] for s in client.get("/api/sources").json()["sources"]]
    assert {"shop", generated["id"], "system"} <= set(listed)
    assert client.get("/api/sources/shop").json() == given


def test_patch_changes_only_the_fields_sent(client: TestClient) -> None:
    created = create_source(client, id="shop", name="Shop", tags=["eu"], description="orders")
    changed = client.patch("/api/sources/shop", json={"enabled": False})
    assert changed.status_code == 200
    body = changed.json()
    assert body["enabled"] is False
    for field in ("name", "tags", "description", "kind", "created_at"):
        assert body[field] == created[field]
    assert body["updated_at"] >= created["updated_at"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PATCH", "/api/sources/shop", {"colour": "red"}, 422),
        ("PATCH", "/api/sources/shop", {}, 422),
        ("PATCH", "/api/sources/shop", {"name": None}, 422),
        ("PATCH", "/api/sources/missing", {"enabled": False}, 404),
        ("POST", "/api/sources", {"id": "bad id!", "name": "x"}, 422),
        ("POST", "/api/sources", {"name": "x", "kind": "carrier-pigeon"}, 422),
        ("POST", "/api/sources", {"id": "shop", "name": "again"}, 409),
        ("GET", "/api/sources/missing", None, 404),
        ("DELETE", "/api/sources/missing", None, 404),
        ("PATCH", "/api/sources/system", {"enabled": False}, 403),
        ("DELETE", "/api/sources/system", None, 403),
    ],
)
def test_bad_source_requests_are_refused_in_the_error_shape(
    client: TestClient, method: str, path: str, body: object, status: int
) -> None:
    create_source(client, id="shop", name="Shop")
    answer = client.request(method, path, json=body)
    assert_error_shape(answer, status)
    assert client.get("/api/sources/shop").json()["enabled"] is True


def test_delete_then_the_source_is_gone(client: TestClient) -> None:
    create_source(client, id="shop")
    assert client.delete("/api/sources/shop").status_code == 204
    assert_error_shape(client.get("/api/sources/shop"), 404)


def api_routes(config: Config) -> list[tuple[str, str]]:
    """Every /api route and method, read from the app's own OpenAPI document, so a new
    route is covered without touching this test."""
    paths = EventstitchApp(config).api.openapi()["paths"]
    routes = []
    for path, operations in paths.items():
        if path.startswith("/api"):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            routes += [(method.upper(), concrete) for method in sorted(operations)]
    return routes


def test_every_api_route_refuses_a_missing_or_wrong_token(
    client: TestClient, config: Config
) -> None:
    routes = api_routes(config)
    assert len(routes) >= 10
    for method, path in routes:
        for headers in (
            {"Authorization": ""},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
        ):
            answer = client.request(method, path, headers=headers)
            body = assert_error_shape(answer, 401)
            assert "Bearer" in body["error"], (method, path)


def test_collect_health_and_metrics_need_no_token(client: TestClient) -> None:
    create_source(client, id="shop")
    client.headers.pop("Authorization")
    assert client.post("/collect/order/shop", json={}).status_code == 200
    assert client.get("/health").json()["ok"] is True
    assert "eventstitch_events_accepted_total" in client.get("/metrics").text


def test_openapi_documents_the_api_and_the_bridge(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/sources",
        "/api/events",
        "/api/insights/counts",
        "/api/profiles/{profile_id}",
        "/collect/{event_type}/{source_id}",
    ):
        assert path in paths


def test_an_unknown_route_answers_in_the_error_shape(client: TestClient) -> None:
    assert_error_shape(client.get("/no/such/route"), 404)
