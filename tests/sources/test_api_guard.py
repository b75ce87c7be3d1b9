"""What guards the API and what stays open: the bearer token on every `/api` route, the one
error shape, OpenAPI, `/health` and `/metrics`."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from eventstitch.app import EventstitchApp
from eventstitch.config import Config
from tests.conftest import API_TOKEN, assert_error_shape, create_source

JSON_TYPE = {"Content-Type": "application/json"}
BAD_CREDENTIALS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {API_TOKEN}x"},
    {"Authorization": f"Bearer {API_TOKEN[:-1]}"},
    {"Authorization": f"Basic {API_TOKEN}"},
    {"Authorization": API_TOKEN},
    {"X-Api-Token": API_TOKEN},
]


def api_routes(config: Config) -> list[tuple[str, str]]:
    """(method, concrete path) of every `/api` route the app serves, read from the app itself so
    that a route added later is covered without touching this test."""
    api = EventstitchApp(config).api
    try:  # FastAPI >= 0.116 keeps included routers whole; this walks into them
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(api.routes))
    except ImportError:  # pragma: no cover - older FastAPI lists every route flat
        routes = list(api.routes)
    found = set()
    for route in routes:
        path = getattr(route, "path", None) or ""
        if not path.startswith("/api"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, concrete))
    return sorted(found)


def test_the_route_list_covers_the_documented_api(config: Config) -> None:
    routes = api_routes(config)
    for expected in [
        ("POST", "/api/sources"),
        ("GET", "/api/sources"),
        ("GET", "/api/sources/x"),
        ("PATCH", "/api/sources/x"),
        ("DELETE", "/api/sources/x"),
        ("GET", "/api/events"),
        ("GET", "/api/events/x"),
        ("GET", "/api/insights/counts"),
    ]:
        assert expected in routes


def test_every_api_route_refuses_a_missing_or_wrong_token_with_401(
    client: TestClient, config: Config
) -> None:
    before = client.get("/api/sources").json()
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    for method, path in api_routes(config):
        body = {"name": "created without a token"} if method in ("POST", "PATCH") else None
        for headers in BAD_CREDENTIALS:
            answer = anonymous.request(method, path, headers=headers, json=body)
            error = assert_error_shape(answer, 401)
            assert "Bearer" in error["error"], (method, path, headers)
            assert answer.headers.get("www-authenticate") == "Bearer"
        # The right token passes the guard; an invalid body keeps it from changing anything.
        allowed = client.request(method, path, json={"colour": 1} if body else None)
        assert allowed.status_code != 401, (method, path)
    after = client.get("/api/sources").json()
    assert [s["id"] for s in after["sources"]] == [s["id"] for s in before["sources"]]


def test_collect_health_metrics_and_docs_need_no_token(client: TestClient) -> None:
    create_source(client, id="shop")
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    assert anonymous.post("/collect/order/shop", json={}).status_code == 200
    assert anonymous.get("/collect/order/shop?a=1").status_code == 200
    wrong = {"Authorization": "Bearer wrong"}
    assert anonymous.post("/collect/order/shop", json={}, headers=wrong).status_code == 200
    for path in ("/health", "/metrics", "/openapi.json", "/docs"):
        assert anonymous.get(path).status_code == 200, path


def test_health_answers_ok_with_the_database_reachable(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True
    assert body["database"] == "ok"
    assert isinstance(body["queue_depth"], int)


def test_openapi_lists_the_api_and_the_bridge(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/api/sources", "post"),
        ("/api/sources", "get"),
        ("/api/sources/{source_id}", "patch"),
        ("/api/sources/{source_id}", "delete"),
        ("/api/events", "get"),
        ("/api/events/{event_id}", "get"),
        ("/api/insights/counts", "get"),
        ("/collect/{event_type}/{source_id}", "post"),
    ]:
        assert method in paths[path], (path, method)


def test_openapi_documents_the_bearer_token_on_every_api_operation(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document.get("components", {}).get("securitySchemes", {})
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    for path, operations in document["paths"].items():
        if path.startswith("/api"):
            for method, operation in operations.items():
                assert operation.get("security"), (method, path)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_metrics_count_accepted_events_and_rejections_by_reason(client: TestClient) -> None:
    create_source(client, id="shop")
    create_source(client, id="off", enabled=False)
    create_source(client, id="site", kind="tracker")
    before = client.get("/metrics").text
    assert client.post("/collect/order/shop", json={"n": 1}).status_code == 200
    assert client.post("/collect/order/shop", json={"n": 2}).status_code == 200
    traffic = [
        ("/collect/order/nowhere", {"json": {}}, 404, "unknown_source"),
        ("/collect/order/off", {"json": {}}, 403, "disabled_source"),
        ("/collect/order/site", {"json": {}}, 403, "wrong_source_kind"),
        ("/collect/order/shop", {"content": b"{nope", "headers": JSON_TYPE}, 400, "malformed_json"),
        ("/collect/bad%20type!/shop", {"json": {}}, 400, "bad_event_type"),
    ]
    for path, request, status, _ in traffic:
        assert_error_shape(client.post(path, **request), status)
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")

    accepted = "eventstitch_events_accepted_total"
    gained = metric(after.text, accepted, route="collect") - metric(
        before, accepted, route="collect"
    )
    assert gained == 2
    rejected = "eventstitch_events_rejected_total"
    for _, _, _, reason in traffic:
        delta = metric(after.text, rejected, reason=reason) - metric(
            before, rejected, reason=reason
        )
        assert delta == 1, reason
    assert "eventstitch_write_queue_depth" in after.text
    assert "eventstitch_commit_batch_size" in after.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/route", 404),
        ("GET", "/api/no-such-thing", 404),
        ("POST", "/health", 405),
        ("PUT", "/api/sources", 405),
    ],
)
def test_routing_refusals_answer_in_the_one_error_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"ok", "error", "errors", "status"}
    assert body["ok"] is False
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["errors"] == []
